/*
 * Split one shell or script line into words, like a small POSIX shell:
 * blanks separate words; '...' quotes literally; "..." quotes but expands
 * $Bn; a backslash escapes the next character; an unquoted '#' at the
 * start of a word starts a comment. $Bn (n >= 1) becomes the id of the
 * n-th blob created in this session (by create or import), in hex.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

struct tok {
	struct cli *c;
	const char *p;			/* input cursor */
	char *o;			/* output cursor into w->buf */
	struct cli_words *w;
};

/* Expand $Bn at t->p (just past '$'). 0, or -1 after an error line. */
static int tok_expand(struct tok *t)
{
	char *end;
	unsigned long n;

	if (t->p[0] != 'B' || !isdigit((unsigned char)t->p[1])) {
		*t->o++ = '$';
		return 0;
	}
	n = strtoul(t->p + 1, &end, 10);
	if (n == 0 || n > t->c->ncreated) {
		cli_err(t->c, "$B%lu: only %zu blobs were created so far", n, t->c->ncreated);
		return -1;
	}
	t->o += sprintf(t->o, "0x%" PRIx64, t->c->created[n - 1]);
	t->p = end;
	return 0;
}

/* Copy a quoted section; t->p is just past the opening quote. */
static int tok_quoted(struct tok *t, char q)
{
	while (*t->p != q) {
		if (*t->p == '\0') {
			cli_err(t->c, "unterminated %s quote", q == '"' ? "double" : "single");
			return -1;
		}
		if (q == '"' && *t->p == '\\' && (t->p[1] == '"' || t->p[1] == '\\' ||
						  t->p[1] == '$')) {
			*t->o++ = t->p[1];
			t->p += 2;
		} else if (q == '"' && *t->p == '$') {
			t->p++;
			if (tok_expand(t) != 0)
				return -1;
		} else {
			*t->o++ = *t->p++;
		}
	}
	t->p++;
	return 0;
}

/* One word from t->p; 0, or -1 after an error line. */
static int tok_word(struct tok *t)
{
	while (*t->p != '\0' && !isspace((unsigned char)*t->p)) {
		char ch = *t->p++;
		int rc = 0;

		if (ch == '\'' || ch == '"')
			rc = tok_quoted(t, ch);
		else if (ch == '\\' && *t->p != '\0')
			*t->o++ = *t->p++;
		else if (ch == '$')
			rc = tok_expand(t);
		else
			*t->o++ = ch;
		if (rc != 0)
			return rc;
	}
	*t->o++ = '\0';
	return 0;
}

int tokenize(struct cli *c, const char *line, struct cli_words *w)
{
	/* Every $Bn grows to at most 19 characters: bound the output. */
	size_t cap = strlen(line) * 10 + 1;
	struct tok t = { c, line, NULL, w };

	memset(w, 0, sizeof(*w));
	w->buf = malloc(cap);
	if (w->buf == NULL)
		return -1;
	t.o = w->buf;
	for (;;) {
		while (isspace((unsigned char)*t.p))
			t.p++;
		if (*t.p == '\0' || *t.p == '#')
			break;
		if (w->argc == CLI_MAX_ARGS) {
			cli_err(c, "too many words on one line (at most %d)", CLI_MAX_ARGS);
			words_free(w);
			return -1;
		}
		w->argv[w->argc++] = t.o;
		if (tok_word(&t) != 0) {
			words_free(w);
			return -1;
		}
	}
	w->argv[w->argc] = NULL;
	return 0;
}

void words_free(struct cli_words *w)
{
	free(w->buf);
	memset(w, 0, sizeof(*w));
}
