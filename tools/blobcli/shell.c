/*
 * Shell mode: a `blob>` prompt with line editing, history and tab
 * completion (libedit) when stdin is a terminal; plain lines otherwise, so
 * `blobcli -f s.img shell < cmds` works too. The store stays loaded from
 * the first command that needs it until quit (or end of input). A failing
 * command prints its one error line and the shell goes on; the exit code
 * is that of the last command.
 *
 * History lives in $BLOBCLI_HISTFILE, else ~/.blobcli_history (an empty
 * BLOBCLI_HISTFILE turns it off).
 */
#include <errno.h>
#include <histedit.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#define SHELL_HISTORY 1000

struct shell {
	struct cli *c;
	EditLine *el;
	History *hist;
	char histfile[PATH_MAX];
	int last_rc;
};

static unsigned char shell_complete(EditLine *el, int ch);

static const char *shell_prompt(EditLine *el)
{
	return "blob> ";
}

/* Run one line; true if the shell should end. */
static bool shell_line(struct shell *sh, const char *line)
{
	struct cli_words w;

	if (tokenize(sh->c, line, &w) != 0) {
		sh->last_rc = CLI_USAGE;
		return false;
	}
	if (w.argc > 0 && (strcmp(w.argv[0], "quit") == 0 || strcmp(w.argv[0], "exit") == 0)) {
		words_free(&w);
		return true;
	}
	if (w.argc > 0)
		sh->last_rc = cli_dispatch(sh->c, w.argc, w.argv);
	words_free(&w);
	return false;
}

static void shell_histfile(struct shell *sh)
{
	const char *env = getenv("BLOBCLI_HISTFILE"), *home = getenv("HOME");

	sh->histfile[0] = '\0';
	if (env != NULL)
		snprintf(sh->histfile, sizeof(sh->histfile), "%s", env);
	else if (home != NULL && home[0] != '\0')
		snprintf(sh->histfile, sizeof(sh->histfile), "%s/.blobcli_history", home);
}

static int shell_el_open(struct shell *sh)
{
	HistEvent ev;

	sh->el = el_init("blobcli", stdin, stdout, stderr);
	sh->hist = history_init();
	if (sh->el == NULL || sh->hist == NULL)
		return -1;
	history(sh->hist, &ev, H_SETSIZE, SHELL_HISTORY);
	history(sh->hist, &ev, H_SETUNIQUE, 1);
	shell_histfile(sh);
	if (sh->histfile[0] != '\0')
		history(sh->hist, &ev, H_LOAD, sh->histfile);
	el_set(sh->el, EL_EDITOR, "emacs");
	el_set(sh->el, EL_SIGNAL, 1);
	el_set(sh->el, EL_PROMPT, shell_prompt);
	el_set(sh->el, EL_HIST, history, sh->hist);
	el_set(sh->el, EL_CLIENTDATA, sh);
	/* The wide form: libedit's narrow EL_ADDFN leaks its copies of the strings. */
	el_wset(sh->el, EL_ADDFN, L"blobcli-complete", L"complete a command, option, id or file",
		shell_complete);
	el_set(sh->el, EL_BIND, "^I", "blobcli-complete", NULL);
	el_source(sh->el, NULL); /* ~/.editrc, if any */
	return 0;
}

static void shell_el_close(struct shell *sh)
{
	HistEvent ev;

	if (sh->hist != NULL && sh->histfile[0] != '\0')
		history(sh->hist, &ev, H_SAVE, sh->histfile);
	if (sh->el != NULL)
		el_end(sh->el);
	if (sh->hist != NULL)
		history_end(sh->hist);
}

/* Interactive loop on a terminal. */
static int shell_tty(struct shell *sh)
{
	const char *line;
	HistEvent ev;
	int count;

	if (shell_el_open(sh) != 0) {
		cli_err(sh->c, "shell: cannot set up line editing");
		shell_el_close(sh);
		return CLI_FAIL;
	}
	printf("blobcli shell: 'help' lists commands, tab completes, 'quit' or ^D leaves\n");
	for (;;) {
		line = el_gets(sh->el, &count);
		if (line == NULL && count == -1 && errno == EINTR) {
			putchar('\n');
			continue; /* ^C at the prompt: a fresh line */
		}
		if (line == NULL || count <= 0)
			break;
		if (strspn(line, " \t\r\n") != strlen(line))
			history(sh->hist, &ev, H_ENTER, line);
		if (shell_line(sh, line))
			break;
	}
	if (line == NULL)
		putchar('\n');
	shell_el_close(sh);
	return sh->last_rc;
}

/* Lines from a pipe or file: no prompt, no editing. */
static int shell_plain(struct shell *sh)
{
	char *line = NULL;
	size_t cap = 0;

	while (getline(&line, &cap, stdin) >= 0)
		if (shell_line(sh, line))
			break;
	free(line);
	return sh->last_rc;
}

int cli_shell(struct cli *c)
{
	struct shell sh = { .c = c };

	if (isatty(STDIN_FILENO))
		return shell_tty(&sh);
	return shell_plain(&sh);
}

/* ------------------------------------------------------------ completion */

/* Candidates sharing @p prefix: insert what they have in common, or list them. */
static unsigned char shell_offer(EditLine *el, const char *prefix, struct cli_cands *cs)
{
	size_t plen = strlen(prefix), common;

	if (cs->n == 0)
		return CC_ERROR;
	common = strlen(cs->v[0]);
	for (size_t i = 1; i < cs->n; i++) {
		size_t k = 0;

		while (k < common && cs->v[i][k] == cs->v[0][k])
			k++;
		common = k;
	}
	if (common > plen || cs->n == 1) {
		char *ins = strndup(cs->v[0] + plen, common - plen);
		size_t len = strlen(cs->v[0]);
		bool dir = len > 0 && cs->v[0][len - 1] == '/';

		if (ins != NULL)
			el_insertstr(el, ins);
		if (cs->n == 1 && !dir)
			el_insertstr(el, " ");
		free(ins);
		return CC_REFRESH;
	}
	fputc('\n', stdout);
	for (size_t i = 0; i < cs->n; i++)
		printf("%s%s", cs->v[i], i + 1 < cs->n ? "  " : "\n");
	return CC_REDISPLAY;
}

static unsigned char shell_complete(EditLine *el, int ch)
{
	struct shell *sh = NULL;
	const LineInfo *li = el_line(el);
	struct cli_cands cs = { 0 };
	struct cli_words w;
	size_t upto = (size_t)(li->cursor - li->buffer);
	char *head = strndup(li->buffer, upto);
	const char *word;
	unsigned char rc;
	bool fresh;

	el_get(el, EL_CLIENTDATA, &sh);
	if (head == NULL || sh == NULL) {
		free(head);
		return CC_ERROR;
	}
	sh->c->quiet = true; /* a half-typed line may not parse: no error lines */
	rc = tokenize(sh->c, head, &w) == 0 ? CC_NORM : CC_ERROR;
	sh->c->quiet = false;
	if (rc == CC_ERROR) {
		free(head);
		return CC_ERROR;
	}
	fresh = upto == 0 || head[upto - 1] == ' ' || head[upto - 1] == '\t';
	word = fresh || w.argc == 0 ? "" : w.argv[w.argc - 1];
	complete_candidates(sh->c, w.argc, w.argv, fresh ? w.argc : w.argc - 1, word, &cs);
	rc = shell_offer(el, word, &cs);
	cands_free(&cs);
	words_free(&w);
	free(head);
	return rc;
}
