// v2 declares a virtual method before an existing one: the vtable's
// slots move, and every object the running process made points at the
// old table. Refused, naming the class.
#include <cstdio>

struct Animal {
	virtual ~Animal() = default;
#if V == 2
	virtual int legs() const
	{
		return 4;
	}
#endif
	virtual const char *sound() const;
};

const char *Animal::sound() const
{
	return "...";
}

__attribute__((noinline)) const char *speak(const Animal &a)
{
	return a.sound();
}

int main()
{
	Animal a;

	std::puts(speak(a));
	return 0;
}
