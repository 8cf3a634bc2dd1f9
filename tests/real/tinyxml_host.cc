/*
 * A long-running C++ program that uses libtinyxml, for
 * tests/real/tinyxml_live.sh: keeps a document it parsed at start, reads
 * one command a line on stdin and prints one result line, so that the
 * library can be patched under it between two commands.
 *   parse TEXT   parse TEXT as a new document: "ok ROOT" or "error ID DESC"
 *   kept         the kept document's root and its "name" attribute
 */
#include <cstdio>
#include <cstring>
#include <string>
#include <tinyxml.h>

int main()
{
	TiXmlDocument kept; /* lives across the patch */
	char line[4096];

	kept.Parse("<config name=\"before\"><item/></config>");
	setvbuf(stdout, nullptr, _IOLBF, 0);
	std::printf("ready\n");
	while (std::fgets(line, sizeof(line), stdin)) {
		line[std::strcspn(line, "\n")] = '\0';
		if (!std::strncmp(line, "parse ", 6)) {
			TiXmlDocument doc;

			doc.Parse(line + 6);
			if (doc.Error())
				std::printf("error %d %s\n", doc.ErrorId(),
					    doc.ErrorDesc());
			else
				std::printf("ok %s\n",
					    doc.RootElement()
						    ? doc.RootElement()->Value()
						    : "(none)");
		} else if (!std::strcmp(line, "kept")) {
			const TiXmlElement *root = kept.RootElement();

			std::printf("%s %s\n", root ? root->Value() : "(none)",
				    root && root->Attribute("name")
					    ? root->Attribute("name")
					    : "(none)");
		} else {
			std::printf("unknown command\n");
		}
	}
	return 0;
}
