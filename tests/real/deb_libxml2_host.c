/*
 * A program using libxml2, for tests/real/deb_libxml2_live.sh: one
 * command a line on stdin, one answer a line, from the same process before
 * and after a live patch of the library. It keeps one document and one
 * XPath context open across the patch.
 *   xpath DEPTH EXPR  evaluate EXPR with the context already DEPTH levels
 *                     deep, as EXSLT's dyn:evaluate() leaves it when it
 *                     evaluates again from inside an evaluation. Before
 *                     CVE-2025-9714's fix every evaluation reset the depth
 *                     to 0, so nested evaluations were never limited (a
 *                     stack overflow); fixed, the limit (5000) holds
 *   count             the elements of the open document (//item)
 */
#include <libxml/parser.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void silent(void *ctx, const char *msg, ...)
{
	(void)ctx;
	(void)msg;
}

int main(void)
{
	static const char doc_text[] =
		"<doc><item>1</item><item>2</item><item>3</item></doc>";
	char line[512];
	xmlDocPtr doc;
	xmlXPathContextPtr ctx;

	setvbuf(stdout, NULL, _IOLBF, 0);
	xmlSetGenericErrorFunc(NULL, silent);
	doc = xmlReadMemory(doc_text, sizeof(doc_text) - 1, "doc.xml", NULL, 0);
	ctx = doc ? xmlXPathNewContext(doc) : NULL;
	if (!ctx)
		return 1;
	printf("ready libxml2 %s\n", xmlParserVersion);
	while (fgets(line, sizeof(line), stdin)) {
		xmlXPathObjectPtr r;
		int depth, n;

		line[strcspn(line, "\n")] = 0;
		if (sscanf(line, "xpath %d %n", &depth, &n) == 1) {
			ctx->depth = depth;
			r = xmlXPathEvalExpression(BAD_CAST(line + n), ctx);
			if (r)
				printf("value %g\n", xmlXPathCastToNumber(r));
			else
				printf("error\n");
			xmlXPathFreeObject(r);
			ctx->depth = 0;
		} else if (!strcmp(line, "count")) {
			r = xmlXPathEvalExpression(BAD_CAST "count(//item)",
						   ctx);
			printf("count %g\n", r ? xmlXPathCastToNumber(r) : -1);
			xmlXPathFreeObject(r);
		} else {
			printf("unknown\n");
		}
	}
	xmlXPathFreeContext(ctx);
	xmlFreeDoc(doc);
	return 0;
}
