static __attribute__((noinline)) int scale(int x)
{
	return x * 7 + 2;
}

int b_value(int x)
{
	return scale(x) + 2;
}
