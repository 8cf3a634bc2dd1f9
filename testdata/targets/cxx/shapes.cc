/* C++ target: the classes' out-of-line methods (see shapes.h). */
#include "shapes.h"

#include <cstdio>

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

	return std::snprintf(buf, (size_t)cap, "%s area=%d scaled=%d u=%d",
			     s.name(), a, scaled(a), unchanged_inline(a));
}
