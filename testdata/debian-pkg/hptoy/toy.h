#ifndef TOY_H
#define TOY_H

#define TOY_SLOTS 4 /* public slots; the secret one follows */

const char *toy_get(int idx);
int toy_version(void);

#endif
