/* C++ target: the classes' out-of-line methods (see shapes.h), and
 * function-local statics whose initialisation a guard variable protects. */
#include "shapes.h"

#include <cstdio>
#include <cstdlib>

static int nr_inits; /* how many times a Cfg was constructed */

struct Cfg {
	int v;
	Cfg() : v(std::atoi("7"))
	{
		nr_inits++;
	}
};

#if V == 2
struct Fresh {
	int v;
	Fresh() : v(std::atoi("5"))
	{
	}
};
#endif

/*
 * v2 changes it: its code must use the running program's static and guard
 * (constructed once, by v1: nr_inits stays 1), and v2's new static, in
 * the patch, is constructed on its first call after the patch is applied.
 */
__attribute__((noinline)) void config(int *inits, int *fresh)
{
	static Cfg c;

	*inits = nr_inits + c.v - 7;
#if V == 1
	*fresh = 0;
#else
	static Fresh f;

	*fresh = f.v;
#endif
}

Shape::~Shape() = default;

const char *Shape::name() const
{
	return "shape";
}

int Rect::area() const
{
#if V == 1
	return w * h;
#else
	return w * h + 1;
#endif
}

const char *Rect::name() const
{
	return "rect";
}

int measure(const Shape &s, char *buf, int cap)
{
	const int a = clampv<int>(s.area(), 0, 1000);
	int inits = 0, fresh = 0;

	int n;

	config(&inits, &fresh);
	n = std::snprintf(
		buf, (size_t)cap, "%s area=%d scaled=%d u=%d inits=%d fresh=%d",
		s.name(), a, scaled(a), unchanged_inline(a), inits, fresh);
#if V == 2
	{
		/* new code that uses the program's vtable (Rect's
		 * constructor) and typeinfo (dynamic_cast) */
		Rect probe;

		probe.w = 2;
		probe.h = 3;
		n += std::snprintf(buf + n, (size_t)(cap - n),
				   " probe=%d cast=%d", area_of(probe),
				   dynamic_cast<const Rect *>(&s) != nullptr);
	}
#endif
	return n;
}
