/*
 * A long-running program that uses libexpat, for tests/real/expat_live.sh:
 * reads one command a line on stdin and prints one result line, so that
 * the library can be patched under it between two commands.
 */
#include <expat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void XMLCALL on_start(void *data, const XML_Char *name,
			     const XML_Char **atts)
{
	(void)name;
	(void)atts;
	++*(unsigned long *)data;
}

static void print_status(XML_Parser p, enum XML_Status st)
{
	const XML_LChar *s = XML_ErrorString(XML_GetErrorCode(p));

	printf("status %d error %d %s\n", (int)st, (int)XML_GetErrorCode(p),
	       s ? s : "(null)");
}

/* One whole document in a new parser. */
static void parse(const char *text)
{
	XML_Parser p = XML_ParserCreate(NULL);
	unsigned long nr_elements = 0;
	enum XML_Status st;

	XML_SetUserData(p, &nr_elements);
	XML_SetStartElementHandler(p, on_start);
	st = XML_Parse(p, text, (int)strlen(text), XML_TRUE);
	print_status(p, st);
	XML_ParserFree(p);
}

/* CVE-2024-45490: XML_ParseBuffer() took a negative length. */
static void negative_len(void)
{
	XML_Parser p = XML_ParserCreate(NULL);
	enum XML_Status st;

	XML_GetBuffer(p, 16);
	st = XML_ParseBuffer(p, -1, XML_FALSE);
	print_status(p, st);
	XML_ParserFree(p);
}

/* CVE-2024-50602: XML_StopParser() suspended a parser never started. */
static void stop_unstarted(void)
{
	XML_Parser p = XML_ParserCreate(NULL);
	enum XML_Status st = XML_StopParser(p, XML_TRUE);

	print_status(p, st);
	XML_ParserFree(p);
}

int main(void)
{
	XML_Parser doc = XML_ParserCreate(NULL); /* lives across the patch */
	unsigned long nr_elements = 0;		 /* of doc */
	char line[4096];

	if (!doc)
		return 1;
	XML_SetUserData(doc, &nr_elements);
	XML_SetStartElementHandler(doc, on_start);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready %s\n", XML_ExpatVersion());
	while (fgets(line, sizeof(line), stdin)) {
		line[strcspn(line, "\n")] = '\0';
		if (!strncmp(line, "parse ", 6)) {
			parse(line + 6);
		} else if (!strncmp(line, "feed ", 5)) {
			enum XML_Status st =
				XML_Parse(doc, line + 5, (int)strlen(line + 5),
					  XML_FALSE);

			printf("feed %d elements %lu\n", (int)st, nr_elements);
		} else if (!strcmp(line, "end")) {
			enum XML_Status st = XML_Parse(doc, "", 0, XML_TRUE);

			printf("end %d elements %lu\n", (int)st, nr_elements);
		} else if (!strcmp(line, "negative-len")) {
			negative_len();
		} else if (!strcmp(line, "stop-unstarted")) {
			stop_unstarted();
		} else if (!strncmp(line, "errstr ", 7)) {
			const XML_LChar *s =
				XML_ErrorString((enum XML_Error)atoi(line + 7));

			printf("%s\n", s ? s : "(null)");
		} else {
			printf("unknown command\n");
		}
	}
	XML_ParserFree(doc);
	return 0;
}
