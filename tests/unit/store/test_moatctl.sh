#!/bin/sh
# test_moatctl.sh - moatctl end to end on a temp data_dir: import/export
# round trip, exit codes (0 ok, 1 user error, 2 internal), error messages
# naming the JSON path, tracking commands, config handling.
# usage: test_moatctl.sh MOATCTL EXAMPLE.json STORE_FEED
set -u
abspath() { (cd "$(dirname "$1")" && printf '%s/%s\n' "$(pwd)" "$(basename "$1")"); }
MOATCTL=$(abspath "$1")
EXAMPLE=$(abspath "$2")
FEED=$(abspath "$3")
T=$(mktemp -d /tmp/moat-moatctl-test-XXXXXX)
trap 'rm -rf "$T"' EXIT
fails=0
n=0

cat >"$T/moat.conf" <<EOF
data_dir = $T/var
EOF
M() { "$MOATCTL" -c "$T/moat.conf" "$@"; }

# expect CODE DESCRIPTION CMD... : run, compare the exit code
expect() {
    want=$1; shift
    what=$1; shift
    n=$((n + 1))
    "$@" >"$T/out" 2>"$T/err"
    got=$?
    if [ "$got" != "$want" ]; then
        echo "FAIL: $what: exit $got, want $want"
        sed 's/^/  stdout: /' "$T/out"
        sed 's/^/  stderr: /' "$T/err"
        fails=$((fails + 1))
    fi
}
# grep_in FILE PATTERN DESCRIPTION
grep_in() {
    n=$((n + 1))
    if ! grep -qF -- "$2" "$T/$1"; then
        echo "FAIL: $3: \"$2\" not in $1:"
        sed 's/^/  /' "$T/$1"
        fails=$((fails + 1))
    fi
}

expect 0 "import example" M import "$EXAMPLE"
grep_in out "imported 1 tenant (1 changed), config version 1" "import summary"
expect 0 "import again" M import "$EXAMPLE"
grep_in out "no changes (1 tenant, config version 1)" "idempotent"
expect 0 "export" M export
cp "$T/out" "$T/e1.json"
expect 0 "import export from stdin" sh -c "\"$MOATCTL\" -c \"$T/moat.conf\" import - <\"$T/e1.json\""
grep_in out "no changes" "round trip changes nothing"
expect 0 "export again" M export
n=$((n + 1))
cmp -s "$T/out" "$T/e1.json" || { echo "FAIL: export | import | export differs"; fails=$((fails + 1)); }
grep_in e1.json '"status": "needs_configuration"' "read-only status"
grep_in e1.json '"verification_token": "' "read-only token"
expect 0 "export one tenant" M --json export --tenant EXAMPLE
grep_in out '"company_id": "example"' "tenant export"
expect 0 "json import" M import --json "$EXAMPLE"
grep_in out '"changed": 0' "json import result"

# trust
sed 's/"verified": false/"verified": true/' "$EXAMPLE" >"$T/verified.json"
expect 0 "import verified without trust" M import "$T/verified.json"
expect 0 "export" M export
grep_in out '"verified": false' "verified needs trust"
expect 0 "import --trust-domains" M import --trust-domains "$T/verified.json"
grep_in out "audit log" "trust noted"
expect 0 "export" M export
grep_in out '"status": "complete"' "trusted domain complete"

# user errors: exit 1, message names the problem
sed 's/"port": 10025, "preference": 10}/"port": 70000, "preference": 10}/' "$EXAMPLE" >"$T/bad.json"
expect 1 "bad port" M import "$T/bad.json"
grep_in err "tenants[0].domains[0].inbound_servers[0].port: must be an integer 1..65535" "port error path"
echo '{"tenants": [{"company_id": "x"}]}' >"$T/bad2.json"
expect 1 "bad company" M import "$T/bad2.json"
grep_in err 'tenants[0].company_id: "x" must be 3 to 63 characters' "company error"
expect 1 "missing file" M import "$T/nonexistent.json"
grep_in err "nonexistent.json: No such file or directory" "missing file message"
expect 1 "no file argument" M import
expect 1 "two files" M import a b
expect 1 "unknown option" M import --force "$EXAMPLE"
expect 1 "unknown tenant" M export --tenant nope
grep_in err 'no such tenant: "nope"' "unknown tenant message"
expect 1 "unknown command" M frobnicate
expect 1 "no command" M
expect 1 "group without subcommand" M tracking
expect 1 "unknown subcommand" M tracking frob
expect 1 "bad --since" M tracking search --since yesterday
expect 1 "invalid date" M tracking search --since 2024-02-30
expect 1 "bad --limit" M tracking search --limit 0
expect 1 "until before since" M tracking search --since 2024-05-02 --until 2024-05-01
expect 1 "show unknown" M tracking show NOPE
grep_in err 'no message with queue ID "NOPE"' "show unknown message"
expect 1 "purge with args" M tracking purge now
expect 1 "missing config" "$MOATCTL" -c "$T/none.conf" export
expect 1 "bad option" "$MOATCTL" --frob export
printf 'data_dir = %s/var\nbogus = 1\n' "$T" >"$T/badkey.conf"
expect 1 "unknown config key" "$MOATCTL" -c "$T/badkey.conf" export
grep_in err "bogus: unknown key" "config error names the key"
printf 'data_dir = %s/pg\ndatabase = postgresql://moat@localhost/moat\n' "$T" >"$T/pg.conf"
expect 1 "postgresql" "$MOATCTL" -c "$T/pg.conf" export
grep_in err "PostgreSQL backend not available yet" "postgresql message"
# internal error: the data_dir cannot be created
printf 'data_dir = /proc/self/moat-cannot-exist\n' >"$T/nodir.conf"
expect 2 "unusable data_dir" "$MOATCTL" -c "$T/nodir.conf" export

# tracking commands on an empty store
expect 0 "search" M tracking search --since 24h --rcpt '*@example.test' --limit 5
grep_in out "no messages found" "empty search"
expect 0 "search json" M tracking search --json --since 2024-05-01T00:00:00Z --until now
grep_in out "[]" "empty json"
expect 0 "search iso offset" M tracking search --since "2024-05-01 09:30+09:00" --action delivered --subject x --id Q --tenant example --sender s
expect 0 "purge" M tracking purge
grep_in out "purged 0 messages" "purge summary"
expect 0 "purge json" M --json tracking purge
grep_in out '"purged": 0' "purge json"
expect 0 "help" M help
grep_in out "tracking search" "help lists subcommands"
expect 0 "help tracking" M help tracking

# tracking commands with data (written by the tracker via store_feed)
expect 0 "feed" "$FEED" "$T/var"
expect 0 "search all" M tracking search
grep_in out "0123456789ABCDEF0123" "queue id"
grep_in out "info@example-jp.test" "recipient"
grep_in out "accepted/delivered" "action/status"
grep_in out "127.0.0.1:10025 [127.0.0.1]" "server"
grep_in out "250 2.0.0 Ok: queued as 42" "reply"
grep_in out "198.51.100.7" "client ip"
grep_in out "請求書 invoice ?[31mred" "subject with controls replaced"
grep_in out "<>" "null sender"
expect 0 "search tenant" M tracking search --tenant example --since 1h
n=$((n + 1))
if grep -q "other.test" "$T/out"; then echo "FAIL: tenant search shows another tenant's recipient"; fails=$((fails + 1)); fi
grep_in out "info@example-jp.test" "tenant sees its recipient"
expect 0 "search json" M tracking search --json --rcpt 'INFO@example-jp.test'
grep_in out '"status": "delivered"' "json row"
grep_in out '"qid": "0123456789ABCDEF0123"' "json qid"
expect 0 "show" M tracking show 0123456789ABCDEF0123
grep_in out "accepted" "timeline received"
grep_in out "delivered" "timeline delivered"
expect 0 "show json" M --json tracking show 0123456789ABCDEF0123
grep_in out '"event": "delivered"' "timeline json"
expect 1 "show other tenant" M tracking show --tenant nobody 0123456789ABCDEF0123
expect 0 "purge old" M tracking purge
grep_in out "purged 1 message " "purged the old one"
expect 1 "purged gone" M tracking show OLDOLDOLDOLDOLDOLD00

# ./moat.conf is the default
mkdir -p "$T/cwd"
printf 'data_dir = %s/var\n' "$T" >"$T/cwd/moat.conf"
expect 0 "default config" sh -c "cd \"$T/cwd\" && \"$MOATCTL\" export --tenant example"

echo "$n checks, $fails failed"
[ "$fails" = 0 ]
