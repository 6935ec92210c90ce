/* main.c - command line: serve, check, load, demo. (being written) */
#include <stdio.h>
int main(void) { puts("poold"); return 0; }
