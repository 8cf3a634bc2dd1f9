# Sourced by the benches ($B: the build directory).
# bench_patch DIR NAME: a key DIR/k (trusted in DIR/trust) and
# DIR/NAME.hpatch, testdata's NAME v1 -> v2 signed with it.
bench_patch() {
	"$B/signing/hpsign" keygen "$1/k" >/dev/null
	mkdir "$1/trust" && cp "$1/k.pub" "$1/trust/"
	"$B/differ/hpdiff" --old "$B/testdata/CMakeFiles/$2-v1.objs.dir" \
		--new "$B/testdata/CMakeFiles/$2-v2.objs.dir" \
		--binary "$B/testdata/$2-v1" --key "$1/k.key" \
		-o "$1/$2.hpatch" -q >/dev/null
}
