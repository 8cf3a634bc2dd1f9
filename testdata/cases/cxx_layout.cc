// v2 inserts a member in the middle of a class a changed method reads:
// objects in the running process have the old layout. Refused, naming
// the class and the member.
#include <cstdio>

class Account
{
      public:
	int id = 3;
#if V == 2
	int flags = 0;
#endif
	int balance = 10;
	__attribute__((noinline)) int fee() const;
};

int Account::fee() const
{
	return balance / 10;
}

int main()
{
	Account a;

	std::printf("%d\n", a.fee());
	return 0;
}
