/*
 * C++ target (tests/e2e/cxx.sh), shared header: a class hierarchy with
 * virtual methods, a template and inline functions defined here, so both
 * objects (shapes.cc, cxx_main.cc) emit them in COMDAT groups and the
 * linker keeps one copy. V=2 changes Rect::area (a method), clampv<int>
 * (a template instance) and scaled (an inline function); unchanged_inline
 * stays the same.
 */
#ifndef CXX_SHAPES_H
#define CXX_SHAPES_H

struct Shape {
	virtual ~Shape();
	virtual int area() const = 0;
	virtual const char *name() const;
	int w = 0, h = 0;
};

struct Rect : Shape {
	int area() const override;
	const char *name() const override;
};

template <typename T> __attribute__((noinline)) T clampv(T x, T lo, T hi)
{
#if V == 1
	return x < lo ? lo : x > hi ? hi : x;
#else
	return x < lo ? lo : x > hi ? hi - 1 : x;
#endif
}

__attribute__((noinline)) inline int scaled(int x)
{
#if V == 1
	return x * 10;
#else
	return x * 100;
#endif
}

__attribute__((noinline)) inline int unchanged_inline(int x)
{
	return x * 3 + 1;
}

/* in cxx_main.cc: a shape's area, through its vtable */
int area_of(const Shape &s);
/* in shapes.cc: one report line from a shape */
int measure(const Shape &s, char *buf, int cap);

#endif
