/*
 * Script mode: one command per line from FILE ('-' = stdin), against one
 * loaded store. Blank lines and '#' comments are skipped; $B1 ... $Bn name
 * the blobs created earlier in the script (create, import). Errors carry
 * "FILE:LINE:". The first failing command stops the script with its exit
 * code; with --keep-going the script runs to the end and exits with the
 * first failure's code.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Run one line; *stop set by quit/exit. Returns the line's exit code. */
static int script_line(struct cli *c, const char *line, bool *stop)
{
	struct cli_words w;
	int rc;

	if (tokenize(c, line, &w) != 0)
		return CLI_USAGE;
	if (w.argc > 0 && (strcmp(w.argv[0], "quit") == 0 || strcmp(w.argv[0], "exit") == 0)) {
		*stop = true;
		rc = CLI_OK;
	} else {
		rc = cli_dispatch(c, w.argc, w.argv);
	}
	words_free(&w);
	return rc;
}

static int script_run(struct cli *c, FILE *f, const char *name)
{
	char *line = NULL, where[512];
	size_t cap = 0;
	unsigned long lineno = 0;
	int first_fail = CLI_OK;
	bool stop = false;

	while (!stop && getline(&line, &cap, f) >= 0) {
		int rc;

		snprintf(where, sizeof(where), "%s:%lu", name, ++lineno);
		c->where = where;
		rc = script_line(c, line, &stop);
		if (rc != CLI_OK && first_fail == CLI_OK)
			first_fail = rc;
		if (rc != CLI_OK && !c->keep_going)
			break;
	}
	c->where = NULL;
	free(line);
	return first_fail;
}

int cli_script(struct cli *c, const char *path)
{
	bool use_stdin = strcmp(path, "-") == 0;
	FILE *f = use_stdin ? stdin : fopen(path, "r");
	int rc;

	if (f == NULL) {
		cli_err(c, "script: %s: %s", path, strerror(errno));
		return CLI_FAIL;
	}
	rc = script_run(c, f, use_stdin ? "stdin" : path);
	if (!use_stdin)
		fclose(f);
	return rc;
}
