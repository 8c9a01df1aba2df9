/* A C program built against an installed kmm through pkg-config: kmm is its malloc. */
#include <kmm/kmm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
  if (kmm_active() != 1) { fprintf(stderr, "kmm is not the malloc\n"); return 1; }
  char* p = malloc(100);
  if (p == NULL) return 1;
  strcpy(p, "kmm from C");
  puts(p);
  free(p);
  return 0;
}
