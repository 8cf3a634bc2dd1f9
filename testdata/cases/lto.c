/* Built with -flto: an object of compiler intermediate code, which hpdiff
 * must refuse by name (tests/unit/test_differ.c). */
int lto_answer(int x)
{
	return x * 42;
}
