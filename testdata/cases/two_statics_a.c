static __attribute__((noinline)) int scale(int x)
{
#if V == 1
	return x * 3 + 1;
#else
	return x * 5 + 1;
#endif
}

int a_value(int x)
{
	return scale(x) + 1;
}
