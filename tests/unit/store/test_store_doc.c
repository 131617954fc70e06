/* test_store_doc.c - the tenant document: validation (every error with its
 * exact JSON path, table-driven), import/export round trip, idempotency,
 * replace semantics, verified/trust handling, list limits, syntax helpers. */
#include "store_test.h"

#include "store/store_int.h"

static const char *example_path; /* docs/examples/tenant.json, from argv */

/* ---------------------------------------------------------------- helpers */
/* doc_set - set (value JSON) or delete (NULL) the member at a path such as
 * "tenants[0].domains[1].inbound_servers[0].port" */
static void doc_set(json_t *root, const char *path, const char *value)
{
    json_t *cur = root;
    const char *p = path;
    for (;;) {
        char key[128];
        size_t idx = 0;
        bool is_index = false;
        if (*p == '[') {
            is_index = true;
            idx = strtoul(p + 1, NULL, 10);
            p = strchr(p, ']') + 1;
        } else {
            size_t n = strcspn(p, ".[");
            memcpy(key, p, n);
            key[n] = '\0';
            p += n;
        }
        if (*p == '.')
            p++;
        if (!*p) {
            json_t *v = NULL;
            if (value) {
                json_error_t je;
                v = json_loads(value, JSON_DECODE_ANY, &je);
                if (!v)
                    fail_msg("bad test value %s: %s", value, je.text);
            }
            if (is_index) {
                if (v && idx == json_array_size(cur))
                    json_array_append_new(cur, v);
                else if (v)
                    json_array_set_new(cur, idx, v);
                else
                    json_array_remove(cur, idx);
            } else {
                if (v)
                    json_object_set_new(cur, key, v);
                else
                    json_object_del(cur, key);
            }
            return;
        }
        cur = is_index ? json_array_get(cur, idx) : json_object_get(cur, key);
        if (!cur)
            fail_msg("test path %s does not exist", path);
    }
}

struct bad_case {
    const char *path;  /* member to change */
    const char *value; /* new JSON value, NULL = remove */
    const char *error; /* exact expected message */
};

static const struct bad_case BAD[] = {
    /* top level */
    {"version", "1", "version: unknown key"},
    {"tenants", "{}", "tenants: must be a list"},
    {"tenants", NULL, "tenants: is required"},
    {"tenants[0]", "\"acme\"", "tenants[0]: must be an object"},
    {"tenants[0].color", "\"red\"", "tenants[0].color: unknown key"},
    /* company_id */
    {"tenants[0].company_id", NULL, "tenants[0].company_id: is required"},
    {"tenants[0].company_id", "5", "tenants[0].company_id: must be a string"},
    {"tenants[0].company_id", "\"ab\"", "tenants[0].company_id: \"ab\" must be 3 to 63 characters"},
    {"tenants[0].company_id", "\"a234567890123456789012345678901234567890123456789012345678901234\"",
     "tenants[0].company_id: \"a23456789012345678901234567890123456789012345678901234567890...\" must be 3 "
     "to 63 "
     "characters"},
    {"tenants[0].company_id", "\"a_b\"",
     "tenants[0].company_id: \"a_b\" must contain only letters, digits and hyphens"},
    {"tenants[0].company_id", "\"ac me\"",
     "tenants[0].company_id: \"ac me\" must contain only letters, digits and hyphens"},
    {"tenants[0].company_id", "\"-abc\"",
     "tenants[0].company_id: \"-abc\" must not start or end with a hyphen"},
    {"tenants[0].name", "7", "tenants[0].name: must be a string"},
    {"tenants[0].name", "\"a\\nb\"", "tenants[0].name: must not contain control characters"},
    {"tenants[0].admin_email", "\"nope\"",
     "tenants[0].admin_email: \"nope\" is not a valid e-mail address: must be an e-mail address "
     "(local-part@domain)"},
    {"tenants[0].admin_email", "\"a..b@acme.test\"",
     "tenants[0].admin_email: \"a..b@acme.test\" is not a valid e-mail address: misplaced dot in the local "
     "part"},
    /* domains */
    {"tenants[0].domains", "{}", "tenants[0].domains: must be a list"},
    {"tenants[0].domains[0]", "\"acme.test\"", "tenants[0].domains[0]: must be an object"},
    {"tenants[0].domains[0].bogus", "1", "tenants[0].domains[0].bogus: unknown key"},
    {"tenants[0].domains[0].name", NULL, "tenants[0].domains[0].name: is required"},
    {"tenants[0].domains[0].name", "\"acme.test.\"",
     "tenants[0].domains[0].name: \"acme.test.\" is not a valid domain name: must not end with a dot"},
    {"tenants[0].domains[0].name", "\"localhost\"",
     "tenants[0].domains[0].name: \"localhost\" is not a valid domain name: must be a fully qualified domain "
     "name "
     "such as example.com"},
    {"tenants[0].domains[0].name", "\"a..test\"",
     "tenants[0].domains[0].name: \"a..test\" is not a valid domain name: empty label (two dots in a row or "
     "a "
     "leading dot)"},
    {"tenants[0].domains[0].name", "\"-acme.test\"",
     "tenants[0].domains[0].name: \"-acme.test\" is not a valid domain name: label must not start or end "
     "with a "
     "hyphen"},
    {"tenants[0].domains[0].name", "\"ac_me.test\"",
     "tenants[0].domains[0].name: \"ac_me.test\" is not a valid domain name: invalid character (only "
     "letters, "
     "digits, hyphens and dots)"},
    {"tenants[0].domains[0].name", "\"192.0.2.1\"",
     "tenants[0].domains[0].name: \"192.0.2.1\" is not a valid domain name: top-level label must not be all "
     "digits"},
    {"tenants[0].domains[0].name",
     "\"a234567890123456789012345678901234567890123456789012345678901234.test\"",
     "tenants[0].domains[0].name: \"a23456789012345678901234567890123456789012345678901234567890...\" is not "
     "a "
     "valid domain name: label longer than 63 characters"},
    {"tenants[0].domains[0].name", "\"ACME2.test\"",
     "tenants[0].domains[1].name: duplicate domain acme2.test (same as domains[0])"},
    {"tenants[0].domains[0].verified", "\"yes\"", "tenants[0].domains[0].verified: must be true or false"},
    {"tenants[0].domains[0].inbound_servers", NULL,
     "tenants[0].domains[0].inbound_servers: is required (at least one inbound server)"},
    {"tenants[0].domains[0].inbound_servers", "[]",
     "tenants[0].domains[0].inbound_servers: must list at least one inbound server"},
    {"tenants[0].domains[0].inbound_servers", "\"mx.acme.test\"",
     "tenants[0].domains[0].inbound_servers: must be a list of servers"},
    {"tenants[0].domains[0].inbound_servers[0]", "\"mx.acme.test\"",
     "tenants[0].domains[0].inbound_servers[0]: must be an object"},
    {"tenants[0].domains[0].inbound_servers[0].port", "0",
     "tenants[0].domains[0].inbound_servers[0].port: must be an integer 1..65535"},
    {"tenants[0].domains[0].inbound_servers[0].port", "65536",
     "tenants[0].domains[0].inbound_servers[0].port: must be an integer 1..65535"},
    {"tenants[0].domains[0].inbound_servers[0].port", "\"25\"",
     "tenants[0].domains[0].inbound_servers[0].port: must be an integer 1..65535"},
    {"tenants[0].domains[0].inbound_servers[0].port", "25.0",
     "tenants[0].domains[0].inbound_servers[0].port: must be an integer 1..65535"},
    {"tenants[0].domains[0].inbound_servers[0].preference", "-1",
     "tenants[0].domains[0].inbound_servers[0].preference: must be an integer 0..65535"},
    {"tenants[0].domains[0].inbound_servers[0].preference", "65536",
     "tenants[0].domains[0].inbound_servers[0].preference: must be an integer 0..65535"},
    {"tenants[0].domains[0].inbound_servers[0].host", NULL,
     "tenants[0].domains[0].inbound_servers[0].host: is required"},
    {"tenants[0].domains[0].inbound_servers[0].host", "\"mx acme\"",
     "tenants[0].domains[0].inbound_servers[0].host: \"mx acme\" is not a valid IP address or host name: "
     "invalid "
     "character (only letters, digits, hyphens and dots)"},
    {"tenants[0].domains[0].inbound_servers[0].host", "\"999.1.1.1\"",
     "tenants[0].domains[0].inbound_servers[0].host: \"999.1.1.1\" is not a valid IP address or host name: "
     "not a valid IP address"},
    {"tenants[0].domains[0].inbound_servers[0].weight", "1",
     "tenants[0].domains[0].inbound_servers[0].weight: unknown key"},
    {"tenants[0].domains[1].inbound_servers[1]", "{\"host\": \"192.0.2.10\", \"port\": 25}",
     "tenants[0].domains[1].inbound_servers[1]: duplicate server (same as inbound_servers[0])"},
    {"tenants[0].domains[0].tls", "\"maybe\"",
     "tenants[0].domains[0].tls: must be one of: opportunistic, required, none"},
    {"tenants[0].domains[0].tls", "true",
     "tenants[0].domains[0].tls: must be one of: opportunistic, required, none"},
    {"tenants[0].domains[1].recipients", "[]",
     "tenants[0].domains[1].recipients: must be null (accept every recipient) or a non-empty list of "
     "addresses"},
    {"tenants[0].domains[1].recipients[0]", "\"x@other.test\"",
     "tenants[0].domains[1].recipients[0]: \"x@other.test\" is not an address at acme2.test"},
    {"tenants[0].domains[1].recipients[0]", "\"no-at-sign\"",
     "tenants[0].domains[1].recipients[0]: \"no-at-sign\" is not a valid address: must be an e-mail address "
     "(local-part@domain)"},
    {"tenants[0].domains[1].recipients[0]", "\"b@acme2.test\"",
     "tenants[0].domains[1].recipients[1]: duplicate address \"B@acme2.test\" (same as [0])"},
    {"tenants[0].domains[1].outbound.sending_servers", "[]",
     "tenants[0].domains[1].outbound.sending_servers: must list at least one IP address or CIDR when "
     "outbound is "
     "enabled"},
    {"tenants[0].domains[1].outbound.sending_servers[0]", "\"192.0.2.1/24\"",
     "tenants[0].domains[1].outbound.sending_servers[0]: \"192.0.2.1/24\" is not a valid IP address or CIDR: "
     "address has bits set beyond the prefix length"},
    {"tenants[0].domains[1].outbound.sending_servers[0]", "\"10.0.0.0/33\"",
     "tenants[0].domains[1].outbound.sending_servers[0]: \"10.0.0.0/33\" is not a valid IP address or CIDR: "
     "prefix "
     "length must be 0..32"},
    {"tenants[0].domains[1].outbound.sending_servers[1]", "\"2001:db8::/129\"",
     "tenants[0].domains[1].outbound.sending_servers[1]: \"2001:db8::/129\" is not a valid IP address or "
     "CIDR: "
     "prefix length must be 0..128"},
    {"tenants[0].domains[1].outbound.sending_servers[0]", "\"mail.acme.test\"",
     "tenants[0].domains[1].outbound.sending_servers[0]: \"mail.acme.test\" is not a valid IP address or "
     "CIDR: not "
     "an IP address or CIDR"},
    {"tenants[0].domains[1].outbound.enabled", "1",
     "tenants[0].domains[1].outbound.enabled: must be true or false"},
    {"tenants[0].domains[1].outbound.relay", "true", "tenants[0].domains[1].outbound.relay: unknown key"},
    /* policies */
    {"tenants[0].policies[0].name", NULL, "tenants[0].policies[0].name: is required"},
    {"tenants[0].policies[0].name", "\"\"", "tenants[0].policies[0].name: must not be empty"},
    {"tenants[0].policies[0].direction", NULL, "tenants[0].policies[0].direction: is required"},
    {"tenants[0].policies[0].direction", "\"sideways\"",
     "tenants[0].policies[0].direction: must be one of: inbound, outbound"},
    {"tenants[0].policies[0].enabled", "\"yes\"", "tenants[0].policies[0].enabled: must be true or false"},
    {"tenants[0].policies[0].priority", "1", "tenants[0].policies[0].priority: unknown key"},
    {"tenants[0].policies[0].recipients", "\"everyone\"",
     "tenants[0].policies[0].recipients: must be \"organization\", \"any\" or a list of addresses and "
     "*@domain "
     "patterns"},
    {"tenants[0].policies[0].recipients", "[]",
     "tenants[0].policies[0].recipients: must be \"organization\", \"any\" or a non-empty list of addresses "
     "and "
     "*@domain patterns"},
    {"tenants[0].policies[0].senders", "[\"*@ok.test\", \"bad\"]",
     "tenants[0].policies[0].senders[1]: \"bad\" is not a valid address or *@domain: must be an e-mail "
     "address "
     "(local-part@domain)"},
    {"tenants[0].policies[0].exclude_senders", "[\"a*b@x.test\"]",
     "tenants[0].policies[0].exclude_senders[0]: \"a*b@x.test\" is not a valid address or *@domain: "
     "wildcards are "
     "only allowed as *@domain"},
    {"tenants[0].policies[0].criteria", NULL,
     "tenants[0].policies[0].criteria: is required (at least one of virus, spam, content, scan_exclusion)"},
    {"tenants[0].policies[0].criteria", "{}",
     "tenants[0].policies[0].criteria: needs at least one criterion (virus, spam, content or "
     "scan_exclusion)"},
    {"tenants[0].policies[0].criteria", "{\"spam\": null, \"virus\": null}",
     "tenants[0].policies[0].criteria: needs at least one criterion (virus, spam, content or "
     "scan_exclusion)"},
    {"tenants[0].policies[0].criteria.dlp", "{}", "tenants[0].policies[0].criteria.dlp: unknown key"},
    {"tenants[0].policies[0].criteria.spam.level", "\"extreme\"",
     "tenants[0].policies[0].criteria.spam.level: must be one of: lowest, low, moderate, high, highest"},
    {"tenants[0].policies[0].criteria.spam", "{}",
     "tenants[0].policies[0].criteria.spam: enables nothing: set level or one of phishing, graymail, bec, "
     "web_reputation, social_engineering"},
    {"tenants[0].policies[0].criteria.spam.bec", "[\"maybe\"]",
     "tenants[0].policies[0].criteria.spam.bec[0]: must be one of: engine, writing_style, probable"},
    {"tenants[0].policies[0].criteria.spam.bec", "[\"engine\", \"engine\"]",
     "tenants[0].policies[0].criteria.spam.bec[1]: duplicate value \"engine\" (same as [0])"},
    {"tenants[0].policies[0].criteria.virus", "{\"types\": [\"worm\"]}",
     "tenants[0].policies[0].criteria.virus.types[0]: must be one of: cleanable, mass_mailing, "
     "non_mass_mailing"},
    {"tenants[0].policies[0].criteria.virus", "{\"types\": []}",
     "tenants[0].policies[0].criteria.virus.types: must list at least one of: cleanable, mass_mailing, "
     "non_mass_mailing"},
    {"tenants[0].policies[0].criteria.virus", "{\"heuristics\": \"on\"}",
     "tenants[0].policies[0].criteria.virus.heuristics: must be true or false"},
    {"tenants[0].policies[0].criteria.scan_exclusion", "[\"timeout\"]",
     "tenants[0].policies[0].criteria.scan_exclusion[0]: must be one of: archive_limits, encrypted, "
     "malformed, scan_failure"},
    {"tenants[0].policies[0].criteria.scan_exclusion", "[]",
     "tenants[0].policies[0].criteria.scan_exclusion: must list at least one of: archive_limits, encrypted, "
     "malformed, scan_failure"},
    {"tenants[0].policies[0].criteria.content", "{}",
     "tenants[0].policies[0].criteria.content: has no condition (set attachment_extensions, "
     "attachment_names, "
     "attachment_types, attachment_size_over, password_protected, message_size_over, keywords or "
     "recipients_over)"},
    {"tenants[0].policies[0].criteria.content", "{\"attachment_types\": [\"bogus\"]}",
     "tenants[0].policies[0].criteria.content.attachment_types[0]: must be one of: executable, script, "
     "archive, "
     "document, office_macro, pdf, image, audio, video, html, text, disk_image"},
    {"tenants[0].policies[0].criteria.content", "{\"message_size_over\": \"10X\"}",
     "tenants[0].policies[0].criteria.content.message_size_over: must be a size such as \"10M\" (bytes, or a "
     "number "
     "with k, M or G) or null"},
    {"tenants[0].policies[0].criteria.content", "{\"attachment_size_over\": -5}",
     "tenants[0].policies[0].criteria.content.attachment_size_over: must be a size such as \"10M\" (bytes, "
     "or a "
     "number with k, M or G) or null"},
    {"tenants[0].policies[0].criteria.content", "{\"attachment_extensions\": [\".exe\"]}",
     "tenants[0].policies[0].criteria.content.attachment_extensions[0]: \".exe\" is not a valid extension: "
     "give the "
     "extension without the leading dot"},
    {"tenants[0].policies[0].criteria.content", "{\"keywords\": [{\"pattern\": \"(?i)inv(oice\"}]}",
     "tenants[0].policies[0].criteria.content.keywords[0].pattern: invalid regular expression "
     "\"(?i)inv(oice\": "
     "Missing close parenthesis for group started at index 7."},
    /* patterns are checked by Vectorscan, as the rule engine compiles them */
    {"tenants[0].policies[0].criteria.content", "{\"keywords\": [{\"pattern\": \"a*\"}]}",
     "tenants[0].policies[0].criteria.content.keywords[0].pattern: invalid regular expression \"a*\": it "
     "matches the empty string (so it would match every message)"},
    {"tenants[0].policies[0].criteria.content", "{\"keywords\": [{\"pattern\": \"(a)\\\\1\"}]}",
     "tenants[0].policies[0].criteria.content.keywords[0].pattern: invalid regular expression \"(a)\\\\1\": "
     "Back-references are unsupported."},
    {"tenants[0].policies[0].criteria.content", "{\"keywords\": [{\"pattern\": \"(?i)\"}]}",
     "tenants[0].policies[0].criteria.content.keywords[0].pattern: must not be empty"},
    {"tenants[0].policies[0].criteria.content",
     "{\"keywords\": [{\"pattern\": \"x\", \"in\": [\"footer\"]}]}",
     "tenants[0].policies[0].criteria.content.keywords[0].in[0]: must be one of: subject, body, headers, "
     "attachments"},
    {"tenants[0].policies[0].criteria.content", "{\"keywords\": [{\"in\": [\"body\"]}]}",
     "tenants[0].policies[0].criteria.content.keywords[0].pattern: is required"},
    {"tenants[0].policies[0].criteria.content", "{\"recipients_over\": 0}",
     "tenants[0].policies[0].criteria.content.recipients_over: must be an integer 1..100000"},
    {"tenants[0].policies[0].actions", "[]", "tenants[0].policies[0].actions: must be an object"},
    {"tenants[0].policies[0].actions.intercept", "\"drop\"",
     "tenants[0].policies[0].actions.intercept: must be one of: none, delete, deliver_now, quarantine, "
     "change_recipient"},
    {"tenants[0].policies[0].actions.change_recipient", "\"x@acme.test\"",
     "tenants[0].policies[0].actions.change_recipient: must be null unless intercept is change_recipient"},
    {"tenants[0].policies[0].actions.intercept", "\"change_recipient\"",
     "tenants[0].policies[0].actions.change_recipient: is required when intercept is change_recipient"},
    {"tenants[0].policies[0].actions.x_header", "{\"name\": \"X Bad\", \"value\": \"v\"}",
     "tenants[0].policies[0].actions.x_header.name: must be a header field name (printable ASCII without "
     "spaces or "
     "colon)"},
    {"tenants[0].policies[0].actions.x_header", "{\"name\": \"X-Ok\"}",
     "tenants[0].policies[0].actions.x_header.value: is required"},
    {"tenants[0].policies[0].actions.x_header", "{\"name\": \"X-Ok\", \"value\": \"a\\r\\nBcc: x@y.test\"}",
     "tenants[0].policies[0].actions.x_header.value: must not contain control characters"},
    {"tenants[0].policies[0].actions.stamp", "{}",
     "tenants[0].policies[0].actions.stamp: needs text or html"},
    {"tenants[0].policies[0].actions.tag_subject", "\"\"",
     "tenants[0].policies[0].actions.tag_subject: must not be empty"},
    {"tenants[0].policies[0].actions.notify", "[{\"template\": \"t\", \"to\": []}]",
     "tenants[0].policies[0].actions.notify[0].to: must be a non-empty list of \"admin\", \"sender\", "
     "\"recipient\" "
     "or addresses"},
    {"tenants[0].policies[0].actions.notify", "[{\"template\": \"t\", \"to\": [\"boss\"]}]",
     "tenants[0].policies[0].actions.notify[0].to[0]: \"boss\" is not \"admin\", \"sender\", \"recipient\" "
     "or a "
     "valid address: must be an e-mail address (local-part@domain)"},
    {"tenants[0].policies[0].actions.bcc", "\"@acme.test\"",
     "tenants[0].policies[0].actions.bcc: \"@acme.test\" is not a valid e-mail address: local part must be 1 "
     "to 64 "
     "characters"},
    {"tenants[0].policies[1]",
     "{\"name\": \"p1\", \"direction\": \"outbound\", \"criteria\": {\"virus\": {}}}",
     "tenants[0].policies[1].name: duplicate policy name \"p1\" (same as policies[0])"},
    /* lists */
    {"tenants[0].approved_senders", "\"ok@partner.test\"",
     "tenants[0].approved_senders: must be a list of strings (sender entry)"},
    {"tenants[0].approved_senders[0]", "\"not valid\"",
     "tenants[0].approved_senders[0]: \"not valid\" is not a valid sender entry: must be an address, "
     "*@domain, IP "
     "address or CIDR"},
    {"tenants[0].approved_senders[0]", "5",
     "tenants[0].approved_senders[0]: must be a string (sender entry)"},
    {"tenants[0].blocked_senders[1]", "\"*@EVIL.test\"",
     "tenants[0].blocked_senders[1]: duplicate sender entry \"*@evil.test\" (same as [0])"},
    {"tenants[0].blocked_senders[1]", "\"203.0.113.5/24\"",
     "tenants[0].blocked_senders[1]: \"203.0.113.5/24\" is not a valid sender entry: must be an address, "
     "*@domain, "
     "IP address or CIDR"},
    {"tenants[0].high_profile_domains[0]", "\"ceo\"",
     "tenants[0].high_profile_domains[0]: \"ceo\" is not a valid domain name: must be a fully qualified "
     "domain "
     "name such as example.com"},
    {"tenants[0].high_profile_users[0].name", "\"\"",
     "tenants[0].high_profile_users[0].name: must not be empty"},
    {"tenants[0].high_profile_users[0].address", NULL,
     "tenants[0].high_profile_users[0].address: is required (an e-mail address)"},
    {"tenants[0].high_profile_users[0].title", "\"CEO\"",
     "tenants[0].high_profile_users[0].title: unknown key"},
    {"tenants[0].web_reputation", "[]",
     "tenants[0].web_reputation: must be an object with \"blocked\" and \"approved\" lists"},
    {"tenants[0].web_reputation.denied", "[]", "tenants[0].web_reputation.denied: unknown key"},
    {"tenants[0].web_reputation.blocked[0]", "\"ftp://x.test/\"",
     "tenants[0].web_reputation.blocked[0]: \"ftp://x.test/\" is not a valid domain or URL: URL prefixes "
     "must start with http:// or https://"},
    {"tenants[0].web_reputation.blocked[0]", "\"http://bad host/\"",
     "tenants[0].web_reputation.blocked[0]: \"http://bad host/\" is not a valid domain or URL: must not "
     "contain spaces or control characters"},
    {"tenants[0].web_reputation.approved[0]", "\"example.test/path\"",
     "tenants[0].web_reputation.approved[0]: \"example.test/path\" is not a valid domain or URL: give a "
     "domain, or a URL prefix starting with http:// or https://"},
    {"tenants[0].web_reputation.blocked[1]", "\"bad.TEST\"",
     "tenants[0].web_reputation.blocked[1]: duplicate domain or URL \"bad.test\" (same as [0])"},
    {"tenants[0].file_passwords[0]", "\"\"",
     "tenants[0].file_passwords[0]: \"\" is not a valid password: must not be empty"},
    /* the tenant's own notification templates */
    {"tenants[0].notification_templates", "{}", "tenants[0].notification_templates: must be a list"},
    {"tenants[0].notification_templates", "[{\"name\":\"A\",\"lang\":\"fr\",\"subject\":\"s\",\"body\":\"b\"}]",
     "tenants[0].notification_templates[0].lang: must be \"ja\" or \"en\""},
    {"tenants[0].notification_templates", "[{\"name\":\"A\",\"lang\":\"en\",\"body\":\"b\"}]",
     "tenants[0].notification_templates[0].subject: is required"},
    {"tenants[0].notification_templates",
     "[{\"name\":\"A\",\"lang\":\"en\",\"subject\":\"s\",\"body\":\"b\"},"
     "{\"name\":\"a\",\"lang\":\"en\",\"subject\":\"t\",\"body\":\"c\"}]",
     "tenants[0].notification_templates[1]: duplicate template (same name and lang as "
     "notification_templates[0])"},
    {"tenants[0].policies[0].actions.notify", "[{\"template\":\"Nope\",\"to\":[\"admin\"]}]",
     "tenants[0].policies[0].actions.notify[0]: template \"Nope\" is neither a default template (Virus "
     "detection, Attachment deleted, Non-delivery report, Message size exceeded, Security settings violation, "
     "Rule triggered) nor one of notification_templates"},
};

/* the tenant's own templates: stored, exported, usable by a notify action */
static void test_own_templates(void **state)
{
    struct tenv *e = *state;
    char err[1024];
    json_t *doc = json_loads(TEST_DOC, 0, NULL);
    doc_set(doc, "tenants[0].notification_templates",
            "[{\"name\":\"Legal hold\",\"lang\":\"ja\",\"subject\":\"保留: %SUBJECT%\",\"body\":\"%RULE%\\n\"},"
            "{\"name\":\"Legal hold\",\"lang\":\"en\",\"subject\":\"Held: %SUBJECT%\",\"body\":\"%RULE%\\n\"}]");
    doc_set(doc, "tenants[0].policies[0].actions.notify",
            "[{\"template\":\"legal hold\",\"to\":[\"admin\"]},{\"template\":\"virus-detection\",\"to\":[\"admin\"]}]");
    char *text = json_dumps(doc, 0);
    json_decref(doc);
    import_ok(e->st, text, false);
    free(text);
    char *out = store_export_json(e->st, NULL, err, sizeof err);
    json_t *x = json_loads(out, 0, NULL);
    json_t *nt = json_object_get(json_array_get(json_object_get(x, "tenants"), 0), "notification_templates");
    assert_int_equal(json_array_size(nt), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(nt, 0), "subject")), "保留: %SUBJECT%");
    assert_string_equal(json_string_value(json_object_get(json_array_get(nt, 1), "lang")), "en");
    json_decref(x);
    /* stable through export | import */
    struct store_import_result res;
    assert_int_equal(store_import_json_report(e->st, out, strlen(out), false, &res, err, sizeof err), 0);
    assert_int_equal(res.changed, 0);
    free(out);
}

static void test_validation_table(void **state)
{
    struct tenv *e = *state;
    char err[1024];
    import_ok(e->st, TEST_DOC, false);
    int64_t v0 = store_config_version(e->st);
    char *before = store_export_json(e->st, NULL, err, sizeof err);
    assert_non_null(before);
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        json_t *doc = json_loads(TEST_DOC, 0, NULL);
        assert_non_null(doc);
        /* change something valid too, to prove nothing is applied */
        doc_set(doc, "tenants[0].name", "\"Changed\"");
        doc_set(doc, BAD[i].path, BAD[i].value);
        char *text = json_dumps(doc, 0);
        json_decref(doc);
        err[0] = '\0';
        int rc = import_str(e->st, text, false, err, sizeof err);
        free(text);
        if (rc != 1 || strcmp(err, BAD[i].error) != 0)
            fail_msg("case %zu (%s):\n  got      %d \"%s\"\n  expected 1 \"%s\"", i, BAD[i].path, rc, err,
                     BAD[i].error);
    }
    assert_int_equal(store_config_version(e->st), v0);
    char *after = store_export_json(e->st, NULL, err, sizeof err);
    assert_string_equal(before, after);
    free(before);
    free(after);
}

/* Whole-document errors that the path table cannot express. */
static void test_validation_documents(void **state)
{
    struct tenv *e = *state;
    char err[1024];
    static const struct {
        const char *doc, *error;
    } cases[] = {
        {"", "invalid JSON at line 1 column 0: '[' or '{' expected near end of file"},
        {"[]", "the document must be a JSON object with a \"tenants\" list"},
        {"{\"tenants\": [], \"tenants\": []}",
         "invalid JSON at line 1 column 25: duplicate object key near '\"tenants\"'"},
        {"{\"tenants\": [{\"company_id\": \"abc\", \"company_id\": \"abd\"}]}",
         "invalid JSON at line 1 column 47: duplicate object key near '\"company_id\"'"},
        {"{\"tenants\": [{\"company_id\": \"abc\"}, {\"company_id\": \"ABC\"}]}",
         "tenants[1].company_id: duplicate company_id abc (same as tenants[0])"},
        {"{\"tenants\": [{\"company_id\": \"one\", \"domains\": [{\"name\": \"x.test\", \"verified\": true, "
         "\"inbound_servers\": "
         "[{\"host\": \"h.test\"}]}]}, {\"company_id\": \"two\", \"domains\": [{\"name\": \"y.test\", "
         "\"inbound_servers\": [{\"host\": \"h.test\"}]}, {\"name\": \"X.TEST\", \"verified\": true, "
         "\"inbound_servers\": [{\"host\": "
         "\"h.test\"}]}]}]}",
         "tenants[1].domains[1].name: x.test is already verified for another tenant (tenants[0])"},
        {"{\"tenants\": [{\"company_id\": \"abc\", \"name\": \"\\u0000\"}]}",
         "invalid JSON at line 1 column 51: \\u0000 is not allowed in strings"},
        {"{\"tenants\": [{\"company_id\": \"abc\"}]} x",
         "invalid JSON at line 1 column 38: end of file expected near 'x'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = store_import_json(e->st, cases[i].doc, strlen(cases[i].doc), false, err, sizeof err);
        if (rc != 1 || strcmp(err, cases[i].error) != 0)
            fail_msg("case %zu: got %d \"%s\", expected \"%s\"", i, rc, err, cases[i].error);
    }
    /* invalid UTF-8 is a JSON error too */
    const char bad_utf8[] = "{\"tenants\": [{\"company_id\": \"abc\", \"name\": \"\xff\"}]}";
    assert_int_equal(store_import_json(e->st, bad_utf8, strlen(bad_utf8), false, err, sizeof err), 1);
    assert_non_null(strstr(err, "invalid JSON"));
    /* a NUL byte inside the buffer */
    const char nul[] = "{\"tenants\": []}\0garbage";
    assert_int_equal(store_import_json(e->st, nul, sizeof nul - 1, false, err, sizeof err), 1);
    assert_int_equal(store_config_version(e->st), 0);
}

/* Domain verified by a tenant that is not in the document (an unverified
 * claim by another tenant does not block: several may wait for verification). */
static void test_domain_claimed_elsewhere(void **state)
{
    struct tenv *e = *state;
    char err[1024];
    import_ok(e->st, TEST_DOC, false);
    import_ok(e->st, BETA_DOC, false);
    const char *share = "{\"tenants\": [{\"company_id\": \"beta\", \"domains\": ["
                        "{\"name\": \"beta.test\", \"inbound_servers\": [{\"host\": \"127.0.0.1\"}]},"
                        "{\"name\": \"ACME2.test\", \"inbound_servers\": [{\"host\": \"127.0.0.1\"}]}]}]}";
    import_ok(e->st, share, false);
    assert_int_equal(db_count(e, "SELECT COUNT(*) FROM domains WHERE name = 'acme2.test'"), 2);
    /* ... but not verified with trust while another tenant claims it */
    const char *share_v = "{\"tenants\": [{\"company_id\": \"beta\", \"domains\": ["
                          "{\"name\": \"beta.test\", \"inbound_servers\": [{\"host\": \"127.0.0.1\"}]},"
                          "{\"name\": \"ACME2.test\", \"verified\": true, \"inbound_servers\": [{\"host\": "
                          "\"127.0.0.1\"}]}]}]}";
    assert_int_equal(import_str(e->st, share_v, true, err, sizeof err), 1);
    assert_string_equal(err, "tenants[0].domains[1].name: acme2.test is already verified by another tenant");
    import_ok(e->st, BETA_DOC, false);
    assert_int_equal(store_domain_set_verified(e->st, "acme", "acme.test", true), 0);
    assert_int_equal(store_domain_set_verified(e->st, "acme", "acme2.test", true), 0);
    const char *steal = "{\"tenants\": [{\"company_id\": \"beta\", \"domains\": ["
                        "{\"name\": \"beta.test\", \"inbound_servers\": [{\"host\": \"127.0.0.1\"}]},"
                        "{\"name\": \"ACME2.test\", \"inbound_servers\": [{\"host\": \"127.0.0.1\"}]}]}]}";
    assert_int_equal(import_str(e->st, steal, false, err, sizeof err), 1);
    assert_string_equal(err, "tenants[0].domains[1].name: acme2.test is already verified by another tenant");
    assert_int_equal(import_str(e->st, steal, true, err, sizeof err), 1);
    /* a new tenant cannot take it either */
    const char *newt = "{\"tenants\": [{\"company_id\": \"gamma\", \"domains\": ["
                       "{\"name\": \"acme.test\", \"inbound_servers\": [{\"host\": \"127.0.0.1\"}]}]}]}";
    assert_int_equal(import_str(e->st, newt, false, err, sizeof err), 1);
    assert_string_equal(err, "tenants[0].domains[0].name: acme.test is already verified by another tenant");
    assert_int_equal(db_count(e, "SELECT COUNT(*) FROM tenants"), 2);
    /* moving it in one document (both tenants present) is fine */
    const char *move =
        "{\"tenants\": [{\"company_id\": \"acme\", \"domains\": [{\"name\": \"acme.test\", "
        "\"inbound_servers\": "
        "[{\"host\": \"127.0.0.1\"}]}]}, {\"company_id\": \"beta\", \"domains\": [{\"name\": \"acme2.test\", "
        "\"verified\": true, \"inbound_servers\": [{\"host\": \"127.0.0.1\"}]}]}]}";
    import_ok(e->st, move, true);
    assert_int_equal(db_count(e, "SELECT COUNT(*) FROM domains d JOIN tenants t ON t.id = d.tenant_id"
                                 " WHERE d.name = 'acme2.test' AND t.company_id = 'beta' AND d.verified = 1"),
                     1);
    assert_int_equal(db_count(e, "SELECT COUNT(*) FROM domains"), 2);
    /* two tenants of one document may both wait for the same name */
    const char *both = "{\"tenants\": [{\"company_id\": \"pone\", \"domains\": [{\"name\": \"pend.test\", "
                       "\"inbound_servers\": [{\"host\": \"127.0.0.1\"}]}]}, {\"company_id\": \"ptwo\", "
                       "\"domains\": [{\"name\": \"pend.test\", \"inbound_servers\": [{\"host\": \"127.0.0.1\"}]}]}]}";
    import_ok(e->st, both, false);
    assert_int_equal(db_count(e, "SELECT COUNT(*) FROM domains WHERE name = 'pend.test'"), 2);
}

/* ---------------------------------------------------------------- round trip */
static void test_round_trip(void **state)
{
    struct tenv *e = *state;
    char err[1024];
    import_ok(e->st, TEST_DOC, false);
    char *e1 = store_export_json(e->st, NULL, err, sizeof err);
    assert_non_null(e1);
    /* canonical form: defaults filled, names normalised, read-only fields added */
    json_t *d = json_loads(e1, 0, NULL);
    json_t *t = json_array_get(json_object_get(d, "tenants"), 0);
    json_t *d0 = json_array_get(json_object_get(t, "domains"), 0);
    json_t *d1 = json_array_get(json_object_get(t, "domains"), 1);
    assert_string_equal(json_string_value(json_object_get(d0, "tls")), "opportunistic");
    assert_true(json_is_null(json_object_get(d0, "recipients")));
    assert_false(json_is_true(json_object_get(d0, "verified")));
    assert_string_equal(json_string_value(json_object_get(d0, "status")), "needs_configuration");
    assert_int_equal(strlen(json_string_value(json_object_get(d0, "verification_token"))), 32);
    assert_int_equal(json_integer_value(
                         json_object_get(json_array_get(json_object_get(d1, "inbound_servers"), 0), "port")),
                     25);
    assert_string_equal(json_string_value(json_array_get(json_object_get(d1, "recipients"), 1)),
                        "B@acme2.test");
    json_t *p = json_array_get(json_object_get(t, "policies"), 0);
    assert_string_equal(json_string_value(json_object_get(p, "recipients")), "organization");
    assert_string_equal(json_string_value(json_object_get(json_object_get(p, "actions"), "intercept")),
                        "quarantine");
    assert_true(json_is_true(json_object_get(json_object_get(p, "actions"), "tag_skip_signed")));
    json_t *wr = json_object_get(t, "web_reputation");
    assert_string_equal(json_string_value(json_array_get(json_object_get(wr, "blocked"), 0)), "bad.test");
    assert_string_equal(json_string_value(json_array_get(json_object_get(wr, "blocked"), 1)),
                        "https://evil.test/login?x=1");
    assert_string_equal(json_string_value(json_array_get(json_object_get(wr, "approved"), 0)), "good.test");
    assert_string_equal(json_string_value(json_array_get(json_object_get(t, "file_passwords"), 1)),
                        "パスワード");
    json_decref(d);

    /* export | import | export is stable, and changes nothing */
    int64_t v = store_config_version(e->st);
    struct store_import_result res;
    assert_int_equal(store_import_json_report(e->st, e1, strlen(e1), false, &res, err, sizeof err), 0);
    assert_int_equal(res.tenants, 1);
    assert_int_equal(res.changed, 0);
    assert_int_equal(store_config_version(e->st), v);
    char *e2 = store_export_json(e->st, NULL, err, sizeof err);
    assert_string_equal(e1, e2);
    /* and through a fresh database */
    struct tenv *f = tenv_new();
    import_ok(f->st, e1, false);
    char *e3 = store_export_json(f->st, NULL, err, sizeof err);
    json_t *j1 = json_loads(e1, 0, NULL), *j3 = json_loads(e3, 0, NULL);
    /* identical except for the random verification tokens */
    json_t *ds[] = {json_object_get(json_array_get(json_object_get(j1, "tenants"), 0), "domains"),
                    json_object_get(json_array_get(json_object_get(j3, "tenants"), 0), "domains")};
    for (size_t k = 0; k < 2; k++)
        for (size_t i = 0; i < json_array_size(ds[k]); i++)
            json_object_del(json_array_get(ds[k], i), "verification_token");
    assert_true(json_equal(j1, j3));
    json_decref(j1);
    json_decref(j3);
    free(e3);
    tenv_free(f);
    free(e1);
    free(e2);
}

static void test_example_document(void **state)
{
    struct tenv *e = *state;
    char err[1024];
    FILE *f = fopen(example_path, "rb");
    if (!f)
        fail_msg("cannot open %s", example_path);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    struct store_import_result res;
    int rc = store_import_json_report(e->st, buf, n, false, &res, err, sizeof err);
    if (rc != 0)
        fail_msg("%s: %s", example_path, err);
    assert_int_equal(res.changed, res.tenants);
    char *e1 = store_export_json(e->st, NULL, err, sizeof err);
    import_ok(e->st, e1, false);
    char *e2 = store_export_json(e->st, NULL, err, sizeof err);
    assert_string_equal(e1, e2);
    /* the example's policy survives exactly (every key given there is kept) */
    json_t *in = json_loads(buf, 0, NULL), *out = json_loads(e1, 0, NULL);
    json_t *pin =
        json_array_get(json_object_get(json_array_get(json_object_get(in, "tenants"), 0), "policies"), 0);
    json_t *pout =
        json_array_get(json_object_get(json_array_get(json_object_get(out, "tenants"), 0), "policies"), 0);
    const char *key;
    json_t *val;
    json_object_foreach(json_object_get(pin, "actions"), key, val)
    {
        if (!json_equal(val, json_object_get(json_object_get(pout, "actions"), key)))
            fail_msg("actions.%s changed", key);
    }
    assert_true(json_equal(json_object_get(json_object_get(pin, "criteria"), "scan_exclusion"),
                           json_object_get(json_object_get(pout, "criteria"), "scan_exclusion")));
    json_decref(in);
    json_decref(out);
    free(e1);
    free(e2);
}

static void test_idempotent_and_version(void **state)
{
    struct tenv *e = *state;
    char err[1024];
    struct store_import_result res;
    assert_int_equal(store_config_version(e->st), 0);
    assert_int_equal(
        store_import_json_report(e->st, TEST_DOC, strlen(TEST_DOC), false, &res, err, sizeof err), 0);
    assert_int_equal(res.changed, 1);
    assert_int_equal(res.config_version, 1);
    char *e1 = store_export_json(e->st, NULL, err, sizeof err);
    assert_int_equal(
        store_import_json_report(e->st, TEST_DOC, strlen(TEST_DOC), false, &res, err, sizeof err), 0);
    assert_int_equal(res.changed, 0);
    assert_int_equal(res.config_version, 1);
    char *e2 = store_export_json(e->st, NULL, err, sizeof err);
    assert_string_equal(e1, e2); /* same tokens, same everything */
    /* an empty document changes nothing */
    import_ok(e->st, "{\"tenants\": []}", false);
    assert_int_equal(store_config_version(e->st), 1);
    /* a real change moves the version once */
    json_t *d = json_loads(TEST_DOC, 0, NULL);
    doc_set(d, "tenants[0].approved_senders", "[\"ok@partner.test\", \"new@partner.test\"]");
    char *t = json_dumps(d, 0);
    json_decref(d);
    assert_int_equal(store_import_json_report(e->st, t, strlen(t), false, &res, err, sizeof err), 0);
    assert_int_equal(res.changed, 1);
    assert_int_equal(store_config_version(e->st), 2);
    free(t);
    free(e1);
    free(e2);
}

/* A tenant in the document replaces the stored one; others stay. */
static void test_replace_semantics(void **state)
{
    struct tenv *e = *state;
    char err[1024];
    import_ok(e->st, TEST_DOC, false);
    import_ok(e->st, BETA_DOC, false);
    char *before = store_export_json(e->st, "acme", err, sizeof err);
    json_t *b = json_loads(before, 0, NULL);
    const char *tok0 = json_string_value(json_object_get(
        json_array_get(json_object_get(json_array_get(json_object_get(b, "tenants"), 0), "domains"), 0),
        "verification_token"));

    const char *smaller =
        "{\"tenants\": [{\"company_id\": \"ACME\", \"name\": \"Acme 2\", \"domains\": ["
        "{\"name\": \"acme.test\", \"inbound_servers\": [{\"host\": \"mx2.acme.test\"}]}]}]}";
    import_ok(e->st, smaller, false);
    char *after = store_export_json(e->st, "Acme", err, sizeof err);
    assert_non_null(after);
    json_t *a = json_loads(after, 0, NULL);
    json_t *t = json_array_get(json_object_get(a, "tenants"), 0);
    assert_string_equal(json_string_value(json_object_get(t, "company_id")), "acme");
    assert_string_equal(json_string_value(json_object_get(t, "name")), "Acme 2");
    assert_int_equal(json_array_size(json_object_get(t, "domains")), 1);
    assert_int_equal(json_array_size(json_object_get(t, "policies")), 0);
    assert_int_equal(json_array_size(json_object_get(t, "approved_senders")), 0);
    assert_int_equal(json_array_size(json_object_get(t, "high_profile_users")), 0);
    assert_true(json_is_null(json_object_get(t, "admin_email")));
    /* the kept domain keeps its token */
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(t, "domains"), 0),
                                                          "verification_token")),
                        tok0);
    /* no orphans */
    assert_int_equal(db_count(e, "SELECT COUNT(*) FROM domain_servers"), 2);
    assert_int_equal(db_count(e, "SELECT COUNT(*) FROM domain_recipients"), 0);
    assert_int_equal(db_count(e, "SELECT COUNT(*) FROM domain_sending_servers"), 0);
    assert_int_equal(db_count(e, "SELECT COUNT(*) FROM sender_lists"), 0);
    /* beta untouched */
    char *beta = store_export_json(e->st, "beta", err, sizeof err);
    assert_non_null(beta);
    assert_non_null(strstr(beta, "beta.test"));
    /* unknown tenant */
    assert_null(store_export_json(e->st, "nope", err, sizeof err));
    assert_string_equal(err, "no such tenant: \"nope\"");
    json_decref(a);
    json_decref(b);
    free(before);
    free(after);
    free(beta);
}

/* export shows each policy's execution order (docs/policy.md), read-only:
 * import ignores it, so a forged value changes nothing */
static void test_execution_order(void **state)
{
    struct tenv *e = *state;
    char err[1024];
    json_t *d = json_loads(TEST_DOC, 0, NULL);
    json_t *pols = json_object_get(json_array_get(json_object_get(d, "tenants"), 0), "policies");
    /* document order: spam, content+quarantine, outbound virus, virus, content+delete */
    json_array_append_new(pols,
                          json_loads("{\"name\": \"c-q\", \"direction\": \"inbound\", \"criteria\": "
                                     "{\"content\": {\"keywords\": [{\"pattern\": \"(?i)請求書|invoice\"}]}},"
                                     " \"actions\": {\"intercept\": \"quarantine\"}}",
                                     0, NULL));
    json_array_append_new(pols, json_loads("{\"name\": \"out-v\", \"direction\": \"outbound\", \"criteria\": "
                                           "{\"virus\": {}}}",
                                           0, NULL));
    json_array_append_new(pols, json_loads("{\"name\": \"v\", \"direction\": \"inbound\", \"criteria\": "
                                           "{\"virus\": {}}, \"actions\": {\"tag_subject\": \"Virus:\"}}",
                                           0, NULL));
    json_array_append_new(pols, json_loads("{\"name\": \"c-d\", \"direction\": \"inbound\", \"criteria\": "
                                           "{\"content\": {\"attachment_extensions\": [\"exe\"]}}, "
                                           "\"actions\": {\"intercept\": \"delete\"}}",
                                           0, NULL));
    char *t = json_dumps(d, 0);
    json_decref(d);
    import_ok(e->st, t, false);
    free(t);
    char *x = store_export_json(e->st, NULL, err, sizeof err);
    assert_non_null(x);
    d = json_loads(x, 0, NULL);
    pols = json_object_get(json_array_get(json_object_get(d, "tenants"), 0), "policies");
    static const int want[] = {4, 3, 1, 1, 2};
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(json_integer_value(json_object_get(json_array_get(pols, i), "execution_order")),
                         want[i]);
    /* a forged order is ignored: nothing changes */
    int64_t v = store_config_version(e->st);
    json_object_set_new(json_array_get(pols, 0), "execution_order", json_integer(99));
    t = json_dumps(d, 0);
    json_decref(d);
    import_ok(e->st, t, false);
    free(t);
    assert_int_equal(store_config_version(e->st), v);
    char *y = store_export_json(e->st, NULL, err, sizeof err);
    assert_string_equal(x, y);
    free(x);
    free(y);
}

static void test_verified_and_trust(void **state)
{
    struct tenv *e = *state;
    char err[1024];
    json_t *d = json_loads(TEST_DOC, 0, NULL);
    doc_set(d, "tenants[0].domains[0].verified", "true");
    doc_set(d, "tenants[0].domains[0].status", "\"complete\"");
    doc_set(d, "tenants[0].domains[0].verification_token", "\"forged\"");
    char *t = json_dumps(d, 0);
    json_decref(d);
    /* without trust: verified stays false, read-only fields ignored */
    import_ok(e->st, t, false);
    char *x = store_export_json(e->st, NULL, err, sizeof err);
    assert_null(strstr(x, "\"verified\": true"));
    assert_null(strstr(x, "forged"));
    assert_int_equal(db_count(e, "SELECT COUNT(*) FROM audit_log"), 0);
    free(x);
    /* with trust: honoured and audited */
    import_ok(e->st, t, true);
    x = store_export_json(e->st, NULL, err, sizeof err);
    assert_non_null(strstr(x, "\"verified\": true"));
    assert_non_null(strstr(x, "\"status\": \"complete\""));
    free(x);
    assert_int_equal(db_count(e, "SELECT COUNT(*) FROM audit_log WHERE action = 'domain.verified'"
                                 " AND company_id = 'acme' AND detail LIKE '%acme.test%'"),
                     1);
    /* re-import without trust and verified:false keeps the stored value */
    int64_t v = store_config_version(e->st);
    import_ok(e->st, TEST_DOC, false);
    assert_int_equal(store_config_version(e->st), v);
    x = store_export_json(e->st, NULL, err, sizeof err);
    assert_non_null(strstr(x, "\"verified\": true"));
    free(x);
    /* the DNS check path */
    assert_int_equal(store_domain_set_verified(e->st, "acme", "acme2.test", true), 0);
    assert_int_equal(store_domain_set_verified(e->st, "acme", "nope.test", true), 1);
    assert_int_equal(store_config_version(e->st), v + 1);
    free(t);
}

/* ---------------------------------------------------------------- limits */
static char *list_doc(const char *list, size_t n)
{
    json_t *d = json_loads(TEST_DOC, 0, NULL);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        char a[64];
        snprintf(a, sizeof a, "user%zu@partner%zu.test", i, i % 7);
        json_array_append_new(arr, json_string(a));
    }
    json_object_set_new(json_array_get(json_object_get(d, "tenants"), 0), list, arr);
    char *t = json_dumps(d, JSON_COMPACT);
    json_decref(d);
    return t;
}

static void test_list_limits(void **state)
{
    struct tenv *e = *state;
    char err[1024];
    static const char *const lists[] = {"approved_senders", "blocked_senders"};
    for (size_t l = 0; l < 2; l++) {
        char *ok = list_doc(lists[l], 5000);
        import_ok(e->st, ok, false);
        char *x = store_export_json(e->st, "acme", err, sizeof err);
        import_ok(e->st, x, false); /* round trip at the limit */
        json_t *j = json_loads(x, 0, NULL);
        assert_int_equal(
            json_array_size(json_object_get(json_array_get(json_object_get(j, "tenants"), 0), lists[l])),
            5000);
        json_decref(j);
        free(x);
        free(ok);
        char *over = list_doc(lists[l], 5001);
        assert_int_equal(import_str(e->st, over, false, err, sizeof err), 1);
        char want[200];
        snprintf(want, sizeof want, "tenants[0].%s: too many entries (5001; at most 5000)", lists[l]);
        assert_string_equal(err, want);
        free(over);
    }
    /* 4999 is fine too, and the list really changed */
    char *less = list_doc("approved_senders", 4999);
    import_ok(e->st, less, false);
    free(less);
    char sql[100];
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM sender_lists WHERE list = 'approved'");
    assert_int_equal(db_count(e, sql), 4999);
}

/* ---------------------------------------------------------------- syntax */
static void test_syntax_helpers(void **state)
{
    (void)state;
    char out[300];
    uint32_t cp[] = {'b', 0xFC, 'c', 'h', 'e', 'r'};
    assert_int_equal(store_punycode_encode(cp, 6, out, sizeof out), 0);
    assert_string_equal(out, "bcher-kva");
    uint32_t ja[] = {0x65E5, 0x672C, 0x8A9E};
    assert_int_equal(store_punycode_encode(ja, 3, out, sizeof out), 0);
    assert_string_equal(out, "wgv71a119e");
    assert_int_equal(store_punycode_encode(ja, 3, out, 5), -1);

    static const struct {
        const char *in, *out, *why;
    } dom[] = {
        {"Example.COM", "example.com", NULL},
        {"B\xC3\xBC"
         "cher.Example",
         "xn--bcher-kva.example", NULL},
        {"B\xC3\x9C"
         "CHER.example",
         "xn--bcher-kva.example", NULL},
        {"\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E.jp", "xn--wgv71a119e.jp", NULL},
        {"\xEF\xBD\x85\xEF\xBD\x98\xEF\xBD\x81\xEF\xBD\x8D\xEF\xBD\x90\xEF\xBD\x8C\xEF\xBD\x85\xEF\xBC\x8E"
         "\xEF\xBD\x8A"
         "\xEF\xBD\x90",
         "example.jp", NULL},
        {"\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\xE3\x80\x82jp", "xn--wgv71a119e.jp", NULL},
        {"xn--wgv71a119e.jp", "xn--wgv71a119e.jp", NULL},
        {"a-b.c-d.test", "a-b.c-d.test", NULL},
        {"example.com.", NULL, "must not end with a dot"},
        {".example.com", NULL, "empty label (two dots in a row or a leading dot)"},
        {"", NULL, "must not be empty"},
        {"ex ample.com", NULL, "invalid character (only letters, digits, hyphens and dots)"},
        {"exa\xFFmple.com", NULL, "invalid UTF-8"},
        {"a\xC2\xA0"
         "b.com",
         NULL, "invalid character (only letters, digits, hyphens and dots)"},
        {"example-.com", NULL, "label must not start or end with a hyphen"},
        {"example.123", NULL, "top-level label must not be all digits"},
    };
    for (size_t i = 0; i < sizeof dom / sizeof dom[0]; i++) {
        const char *why = store_syntax_domain(dom[i].in, true, out, sizeof out);
        if (dom[i].why) {
            if (!why || strcmp(why, dom[i].why) != 0)
                fail_msg("domain %zu: got %s, want %s", i, why ? why : "ok", dom[i].why);
        } else {
            if (why)
                fail_msg("domain %zu: %s", i, why);
            assert_string_equal(out, dom[i].out);
        }
    }
    /* 253 characters is the limit */
    char longname[300] = "";
    for (int i = 0; i < 4; i++)
        strncat(longname, "a23456789012345678901234567890123456789012345678901234567890123.", 80);
    longname[strlen(longname) - 1] = '\0'; /* 255 chars */
    assert_string_equal(store_syntax_domain(longname, true, out, sizeof out), "longer than 253 characters");
    longname[251] = '\0'; /* 251 chars, last label ends "a2" */
    assert_null(store_syntax_domain(longname, true, out, sizeof out));

    assert_null(store_syntax_address("Taro.Yamada+tag@Example.JP", out, sizeof out));
    assert_string_equal(out, "Taro.Yamada+tag@example.jp");
    assert_null(store_syntax_address("\xE5\xA4\xAA\xE9\x83\x8E@example.jp", out, sizeof out));
    assert_string_equal(store_syntax_address(".a@x.test", out, sizeof out),
                        "misplaced dot in the local part");
    assert_string_equal(store_syntax_address("a b@x.test", out, sizeof out),
                        "invalid character in the local part");
    assert_string_equal(store_syntax_address("a@", out, sizeof out), "must not be empty");
    assert_null(store_syntax_address_pattern("*@Friends.TEST", out, sizeof out));
    assert_string_equal(out, "*@friends.test");
    assert_null(store_syntax_cidr("2001:DB8::/32", out, sizeof out));
    assert_string_equal(out, "2001:db8::/32");
    assert_null(store_syntax_cidr("0.0.0.0/0", out, sizeof out));
    assert_null(store_syntax_cidr("192.0.2.7", out, sizeof out));
    assert_string_equal(store_syntax_cidr("192.0.2.0/", out, sizeof out), "prefix length must be 0..32");
    assert_null(store_syntax_host("::1", out, sizeof out));
    assert_null(store_syntax_host("localhost", out, sizeof out));
    assert_null(store_syntax_company_id("Acme-01", out, sizeof out));
    assert_string_equal(out, "acme-01");
}

int main(int argc, char **argv)
{
    log_init("test", false, LOG_LVL_ERROR);
    example_path = argc > 1 ? argv[1] : "docs/examples/tenant.json";
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_validation_table, tenv_setup, tenv_teardown),
        cmocka_unit_test_setup_teardown(test_validation_documents, tenv_setup, tenv_teardown),
        cmocka_unit_test_setup_teardown(test_domain_claimed_elsewhere, tenv_setup, tenv_teardown),
        cmocka_unit_test_setup_teardown(test_round_trip, tenv_setup, tenv_teardown),
        cmocka_unit_test_setup_teardown(test_execution_order, tenv_setup, tenv_teardown),
        cmocka_unit_test_setup_teardown(test_example_document, tenv_setup, tenv_teardown),
        cmocka_unit_test_setup_teardown(test_idempotent_and_version, tenv_setup, tenv_teardown),
        cmocka_unit_test_setup_teardown(test_replace_semantics, tenv_setup, tenv_teardown),
        cmocka_unit_test_setup_teardown(test_verified_and_trust, tenv_setup, tenv_teardown),
        cmocka_unit_test_setup_teardown(test_list_limits, tenv_setup, tenv_teardown),
        cmocka_unit_test_setup_teardown(test_own_templates, tenv_setup, tenv_teardown),
        cmocka_unit_test(test_syntax_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
