// v2 gives a base class one more member: every member of the derived
// class a changed method reads moves. Refused, naming the derived class
// (its base and members) and the base.
#include <cstdio>

struct Base {
	int kind = 1;
#if V == 2
	int extra = 0;
#endif
};

struct Derived : Base {
	int size = 4;
	__attribute__((noinline)) int twice() const;
};

int Derived::twice() const
{
	return size * 2;
}

int main()
{
	Derived d;

	std::printf("%d\n", d.twice());
	return 0;
}
