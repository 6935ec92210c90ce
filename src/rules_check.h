/* rules_check.h - `poold check DIR|FILE`: compile rule files in a private
 * rule VM (over an empty store) and run their examples.
 * Prints one line per file to out:
 *     ok  rules/x.lua  (pool x, 3 examples)
 *     rules/x.lua:7: unknown key "mtach" in pool "x"
 * Any thread; it touches no engine state. */
#ifndef POOLD_RULES_CHECK_H
#define POOLD_RULES_CHECK_H
#include <stdio.h>

/* Returns 0 if every file is ok, 1 if any has a user error (or the path is
 * missing / holds no rule file), 2 on an internal error. */
int rules_check_path(const char *path, FILE *out);

#endif
