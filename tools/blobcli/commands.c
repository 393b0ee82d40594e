/*
 * The command table, dispatch and help. Every command is one row: its
 * function, usage, one-line summary, and what its arguments are (for tab
 * completion). To add a command, add a row here and its function in the
 * cmd_*.c file of its area.
 */
#include <getopt.h>
#include <string.h>

#include "cli.h"

static int cmd_help(struct cli *c, int argc, char **argv);

static const struct cli_cmd g_cmds[] = {
	{ "init", cmd_init, "[--cluster-size SIZE] [--max-blobs N] [--md-pages N] "
	  "[--clear unmap|zeroes|none] [--bstype TEXT] [--force]",
	  "lay out a new, empty store on the device", "",
	  "--cluster-size --max-blobs --md-pages --clear --bstype --force", NULL },
	{ "info", cmd_info, "[--json]", "geometry, space, blobs and state of the store", "",
	  "--json", NULL },
	{ "list", cmd_list, "[--json]", "every blob: id, size, allocation, flags, parent, xattrs",
	  "", "--json", NULL },
	{ "create", cmd_create, "[--size SIZE | --clusters N] [--thin] [--xattr NAME=VALUE]...",
	  "create a blob and print its id", "", "--size --clusters --thin --xattr", NULL },
	{ "resize", cmd_resize, "ID SIZE | ID --clusters N",
	  "change a blob's size (rounded up to whole clusters)", "I", "--clusters", NULL },
	{ "delete", cmd_delete, "ID...", "delete blobs", "I*", "", NULL },
	{ "xattr", cmd_xattr, "set ID NAME VALUE | get ID NAME | rm ID NAME | list ID",
	  "a blob's extended attributes", "sI", "--hex", "set get rm list" },
	{ "super", cmd_super, "get | set ID | clear", "the store's super blob", "sI", "",
	  "get set clear" },
	{ "import", cmd_import, "FILE [ID] [--thin]",
	  "copy a file into a new blob (or into ID, resized to fit)", "FI", "--thin", NULL },
	{ "export", cmd_export, "ID FILE [--whole]",
	  "copy a blob into FILE ('-' = stdout), byte-exact", "IF", "--whole", NULL },
	{ "fill", cmd_fill, "ID BYTE [--offset SIZE] [--length SIZE]",
	  "write a byte pattern over a blob or a range of it", "I", "--offset --length", NULL },
	{ "snapshot", cmd_snapshot, "ID [--xattr NAME=VALUE]...",
	  "snapshot a blob: a read-only blob takes its clusters, it becomes a clone",
	  "I", "--xattr", NULL },
	{ "clone", cmd_clone, "SNAPSHOT-ID [--xattr NAME=VALUE]...",
	  "create a thin clone of a read-only blob", "I", "--xattr", NULL },
	{ "inflate", cmd_inflate, "ID", "give a clone its own copy of every cluster; no parent",
	  "I", "", NULL },
	{ "decouple", cmd_decouple, "ID",
	  "copy what a clone's parent owns; the grandparent becomes its parent", "I", "", NULL },
	{ "dump", cmd_dump, "[--full]",
	  "print the super block and every metadata page, decoded", "", "--full", NULL },
	{ "check", cmd_check, "[--json]",
	  "check the store's consistency (exit 0 clean, 1 problems, 2 not loadable)", "",
	  "--json", NULL },
	{ "recover", cmd_recover, "", "force a dirty recovery, then a clean unload", "", "", NULL },
	{ "help", cmd_help, "[COMMAND]", "list commands, or show one command's usage", "c", "",
	  NULL },
};

#define NCMDS (sizeof(g_cmds) / sizeof(g_cmds[0]))

const struct cli_cmd *cli_cmd_at(size_t i)
{
	return i < NCMDS ? &g_cmds[i] : NULL;
}

const struct cli_cmd *cli_find_cmd(const char *name)
{
	for (size_t i = 0; i < NCMDS; i++)
		if (strcmp(g_cmds[i].name, name) == 0)
			return &g_cmds[i];
	return NULL;
}

void cli_usage(FILE *out)
{
	fprintf(out,
		"usage: blobcli [OPTIONS] COMMAND [ARGS]   run one command\n"
		"       blobcli [OPTIONS] shell            interactive shell (blob> prompt)\n"
		"       blobcli [OPTIONS] script FILE      one command per line ('-' = stdin)\n"
		"options:\n"
		"  -f, --file PATH     the store: a file or a raw block device\n"
		"      --create SIZE   create (or extend) the file to SIZE first\n"
		"      --ram SIZE      a throwaway store in memory\n"
		"      --block-size N  io unit for a file device (default 4096)\n"
		"      --json          JSON output (info, list, check)\n"
		"  -k, --keep-going    script: go on after a failing command\n"
		"  -v, --verbose       show the library's log lines (-vv, -vvv: more)\n"
		"  -h, --help          this help;  -V, --version\n"
		"commands:\n");
	for (size_t i = 0; i < NCMDS; i++)
		fprintf(out, "  %-9s %s\n", g_cmds[i].name, g_cmds[i].summary);
	fprintf(out, "sizes take K, M, G, T suffixes (binary); ids are hex (0x100000000) or "
		"decimal.\nexit: 0 ok, 1 failed or problems found, 2 store not loadable, "
		"3 usage.\n");
}

static int cmd_help(struct cli *c, int argc, char **argv)
{
	const struct cli_cmd *cmd;

	if (argc < 2) {
		cli_usage(stdout);
		return CLI_OK;
	}
	cmd = cli_find_cmd(argv[1]);
	if (cmd == NULL) {
		cli_err(c, "help: unknown command '%s'", argv[1]);
		return CLI_USAGE;
	}
	printf("usage: %s %s\n  %s\n", cmd->name, cmd->usage, cmd->summary);
	return CLI_OK;
}

int cli_bad_usage(struct cli *c, const char *cmd, const char *why)
{
	const struct cli_cmd *k = cli_find_cmd(cmd);

	if (k != NULL)
		cli_err(c, "%s: %s (usage: %s %s)", cmd, why, cmd, k->usage);
	else
		cli_err(c, "%s: %s", cmd, why);
	return CLI_USAGE;
}

int cli_getopt(struct cli *c, int argc, char **argv, const char *shortopts,
	       const void *longopts, int *opt)
{
	int o = getopt_long(argc, argv, shortopts, longopts, NULL);
	char why[96];

	*opt = o;
	if (o != '?' && o != ':')
		return 0;
	if (o == ':' || (optopt != 0 && strchr(shortopts, optopt) != NULL))
		snprintf(why, sizeof(why), "option '%s' needs a value", argv[optind - 1]);
	else
		snprintf(why, sizeof(why), "unknown option '%s'", argv[optind - 1]);
	return cli_bad_usage(c, argv[0], why);
}

int cli_dispatch(struct cli *c, int argc, char **argv)
{
	const struct cli_cmd *cmd;
	int rc;

	if (argc == 0)
		return CLI_OK;
	cmd = cli_find_cmd(argv[0]);
	if (cmd == NULL) {
		cli_err(c, "unknown command '%s' (try 'help')", argv[0]);
		return CLI_USAGE;
	}
	optind = 0; /* full getopt reset for the command's own options */
	opterr = 0;
	cli_interrupted = 0;
	rc = cmd->fn(c, argc, argv);
	fflush(stdout);
	return rc;
}

/*
 * The preamble of read-only reporting commands (info, list, check): accept
 * only --json, no arguments, then load the store. 0 or an exit code.
 */
int cli_json_only(struct cli *c, const char *cmd, int argc, char **argv, bool *json)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' }, { NULL, 0, NULL, 0 },
	};
	int opt, rc;

	*json = c->json;
	while ((rc = cli_getopt(c, argc, argv, ":", opts, &opt)) == 0 && opt != -1)
		*json = true;
	if (rc != 0)
		return rc;
	if (optind < argc)
		return cli_bad_usage(c, cmd, "unexpected argument");
	return cli_store(c);
}
