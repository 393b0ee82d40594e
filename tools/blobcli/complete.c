/*
 * Tab completion candidates for the shell: command names first; then,
 * from the command table, subcommands, long options, blob ids (of the
 * loaded store) and file names, by what the argument at the cursor is.
 */
#include <dirent.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

static void cands_add(struct cli_cands *cs, const char *s, const char *prefix)
{
	if (strncmp(s, prefix, strlen(prefix)) != 0)
		return;
	if (cs->n == cs->cap) {
		size_t cap = cs->cap ? 2 * cs->cap : 32;
		char **v = realloc(cs->v, cap * sizeof(*v));

		if (v == NULL)
			return;
		cs->v = v;
		cs->cap = cap;
	}
	if ((cs->v[cs->n] = strdup(s)) != NULL)
		cs->n++;
}

void cands_free(struct cli_cands *cs)
{
	for (size_t i = 0; i < cs->n; i++)
		free(cs->v[i]);
	free(cs->v);
	memset(cs, 0, sizeof(*cs));
}

/* Each space-separated word of @p list. */
static void cands_words(struct cli_cands *cs, const char *list, const char *prefix)
{
	char buf[256], *save = NULL;

	if (list == NULL)
		return;
	snprintf(buf, sizeof(buf), "%s", list);
	for (char *t = strtok_r(buf, " ", &save); t != NULL; t = strtok_r(NULL, " ", &save))
		cands_add(cs, t, prefix);
}

static void cands_ids(struct cli *c, struct cli_cands *cs, const char *prefix)
{
	char buf[24];

	if (c->bs == NULL)
		return; /* ids of a loaded store only: a tab never loads one */
	for (bs_blob_id id = bs_iter_first(c->bs); id != BS_BLOB_ID_INVALID;
	     id = bs_iter_next(c->bs, id)) {
		snprintf(buf, sizeof(buf), "0x%" PRIx64, id);
		cands_add(cs, buf, prefix);
	}
}

/* Files in the directory part of @p prefix; directories get a '/'. */
static void cands_files(struct cli_cands *cs, const char *prefix)
{
	const char *slash = strrchr(prefix, '/');
	size_t dlen = slash ? (size_t)(slash - prefix) + 1 : 0;
	char dir[1024], path[2048];
	struct dirent *e;
	struct stat st;
	DIR *d;

	snprintf(dir, sizeof(dir), "%.*s", (int)dlen, prefix);
	d = opendir(dlen ? dir : ".");
	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
		    (e->d_name[0] == '.' && prefix[dlen] != '.'))
			continue;
		snprintf(path, sizeof(path), "%s%s", dir, e->d_name);
		if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
			strncat(path, "/", sizeof(path) - strlen(path) - 1);
		cands_add(cs, path, prefix);
	}
	closedir(d);
}

/* The kind (ARG_*) of positional argument @p pos (1-based) of @p cmd. */
static char arg_kind(const struct cli_cmd *cmd, int pos)
{
	size_t n = strlen(cmd->args);

	if (pos < 1 || n == 0)
		return 0;
	if ((size_t)pos <= n && cmd->args[pos - 1] != '*')
		return cmd->args[pos - 1];
	if (cmd->args[n - 1] == '*' && n >= 2)
		return cmd->args[n - 2];
	return 0;
}

void complete_candidates(struct cli *c, int argc, char **argv, int wordno, const char *prefix,
			 struct cli_cands *out)
{
	const struct cli_cmd *cmd;
	int pos = 0;

	if (wordno == 0) {
		for (size_t i = 0; (cmd = cli_cmd_at(i)) != NULL; i++)
			cands_add(out, cmd->name, prefix);
		cands_words(out, "quit", prefix);
		return;
	}
	cmd = cli_find_cmd(argv[0]);
	if (cmd == NULL)
		return;
	if (prefix[0] == '-') {
		cands_words(out, cmd->options, prefix);
		return;
	}
	for (int i = 1; i < wordno && i < argc; i++)
		pos += argv[i][0] != '-';
	switch (arg_kind(cmd, pos + 1)) {
	case ARG_SUB: cands_words(out, cmd->subs, prefix); break;
	case ARG_ID: cands_ids(c, out, prefix); break;
	case ARG_FILE: cands_files(out, prefix); break;
	case ARG_CMD:
		for (size_t i = 0; (cmd = cli_cmd_at(i)) != NULL; i++)
			cands_add(out, cmd->name, prefix);
		break;
	default: break;
	}
}
