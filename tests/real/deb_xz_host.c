/*
 * A program using liblzma, for tests/real/deb_xz_live.sh: one command a
 * line on stdin, one answer a line, from the same process before and
 * after a live patch of the library.
 *   probe  start an .lzma (alone) decoder whose allocator refuses the
 *          8 MiB dictionary, and print what lzma_code returns and how many
 *          of the decoder's allocations are still live after the error.
 *          xz-utils 5.4.1-1+deb12u2 (GHSA-5qpq-xqfv-j9pg) frees the failed
 *          inner decoder at once (lzma_next_end); before, it stayed
 *          allocated, half initialised, for the next lzma_code to reuse
 *   xz     compress and decompress a buffer: the library still works
 */
#include <lzma.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int live;

static void *counting_alloc(void *opaque, size_t nmemb, size_t size)
{
	void *p;

	(void)opaque;
	if (nmemb * size >= (1u << 20))
		return NULL; /* the dictionary: out of memory */
	p = malloc(nmemb * size);
	if (p)
		live++;
	return p;
}

static void counting_free(void *opaque, void *ptr)
{
	(void)opaque;
	if (ptr)
		live--;
	free(ptr);
}

static void probe(void)
{
	static const lzma_allocator allocator = { counting_alloc, counting_free,
						  NULL };
	/* .lzma header: lc=3 lp=0 pb=2, 8 MiB dictionary, size unknown */
	static const uint8_t in[32] = { 0x5d, 0,    0,	  0x80, 0,
					0xff, 0xff, 0xff, 0xff, 0xff,
					0xff, 0xff, 0xff };
	uint8_t out[64];
	lzma_stream strm = LZMA_STREAM_INIT;
	lzma_ret ret;
	int after_error;

	live = 0;
	strm.allocator = &allocator;
	if (lzma_alone_decoder(&strm, UINT64_MAX) != LZMA_OK) {
		printf("init failed\n");
		return;
	}
	strm.next_in = in;
	strm.avail_in = sizeof(in);
	strm.next_out = out;
	strm.avail_out = sizeof(out);
	ret = lzma_code(&strm, LZMA_RUN);
	after_error = live;
	lzma_end(&strm);
	printf("ret %d live %d end %d\n", (int)ret, after_error, live);
}

static void roundtrip(void)
{
	static const char text[] = "hpatch live-patched liblzma, twice over";
	uint8_t packed[256], back[64];
	size_t packed_len = 0, in_pos = 0, back_len = 0;
	uint64_t memlimit = UINT64_MAX;

	if (lzma_easy_buffer_encode(6, LZMA_CHECK_CRC64, NULL,
				    (const uint8_t *)text, sizeof(text), packed,
				    &packed_len, sizeof(packed)) != LZMA_OK ||
	    lzma_stream_buffer_decode(&memlimit, 0, NULL, packed, &in_pos,
				      packed_len, back, &back_len,
				      sizeof(back)) != LZMA_OK ||
	    back_len != sizeof(text) || memcmp(back, text, back_len)) {
		printf("xz broken\n");
		return;
	}
	printf("xz ok %zu\n", packed_len);
}

int main(void)
{
	char line[64];

	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready liblzma %s\n", lzma_version_string());
	while (fgets(line, sizeof(line), stdin)) {
		if (!strcmp(line, "probe\n"))
			probe();
		else if (!strcmp(line, "xz\n"))
			roundtrip();
		else
			printf("unknown\n");
	}
	return 0;
}
