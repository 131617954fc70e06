/*
 * banned.h - poison C library functions that STYLE.md bans.
 *
 * Included last by core.h so every module that includes core.h gets it. Use
 * snprintf, bounded copies (core_strlcpy) and checked parsing (core_parse_u64).
 */
#ifndef MOAT_BANNED_H
#define MOAT_BANNED_H
#pragma GCC poison strcpy strcat sprintf vsprintf gets strtok atoi
#endif
