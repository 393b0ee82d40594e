/*
 * blobcli entry point: global options, then one of three modes:
 *
 *   blobcli [OPTIONS] COMMAND [ARGS]     command mode: one command, exit
 *   blobcli [OPTIONS] shell              the blob> prompt
 *   blobcli [OPTIONS] script FILE [-k]   a file of commands
 *
 * Whatever the mode, the store is unloaded cleanly at the end, and the exit
 * code is that of the (first failing) command, or of the unload.
 */
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#ifndef BLOBCLI_VERSION
#define BLOBCLI_VERSION "0"
#endif

enum cli_mode { MODE_COMMAND, MODE_SHELL, MODE_SCRIPT };

static const struct option g_opts[] = {
	{ "file", required_argument, NULL, 'f' },
	{ "create", required_argument, NULL, 'C' },
	{ "ram", required_argument, NULL, 'R' },
	{ "block-size", required_argument, NULL, 'b' },
	{ "json", no_argument, NULL, 'j' },
	{ "keep-going", no_argument, NULL, 'k' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

/* A size option's value; one error line and CLI_USAGE if malformed. */
static int main_size(struct cli *c, const char *opt, uint64_t *out)
{
	if (parse_size(optarg, out) == 0 && *out > 0)
		return 0;
	cli_err(c, "%s: bad size '%s' (like 64M, 1G)", opt, optarg);
	return CLI_USAGE;
}

/* One global option. 0, -1 (exit 0 now: help, version) or an exit code. */
static int main_opt(struct cli *c, int opt)
{
	uint64_t v;

	switch (opt) {
	case 'f': c->path = optarg; return 0;
	case 'C': return main_size(c, "--create", &c->create_size);
	case 'R': return main_size(c, "--ram", &c->ram_size);
	case 'b':
		if (main_size(c, "--block-size", &v) != 0)
			return CLI_USAGE;
		if (v < 512 || v > 65536 || (v & (v - 1)) != 0) {
			cli_err(c, "--block-size: a power of two from 512 to 65536");
			return CLI_USAGE;
		}
		c->block_size = (uint32_t)v;
		return 0;
	case 'j': c->json = true; return 0;
	case 'k': c->keep_going = true; return 0;
	case 'v': c->verbose++; return 0;
	case 'h': cli_usage(stdout); return -1;
	case 'V': printf("blobcli %s\n", BLOBCLI_VERSION); return -1;
	case ':':
		cli_err(c, "option '-%c' needs a value", optopt);
		return CLI_USAGE;
	default:
		cli_err(c, "unknown option '-%c' (try --help)", optopt);
		return CLI_USAGE;
	}
}

static int main_options(struct cli *c, int argc, char **argv)
{
	int opt, rc;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+:f:jkvhV", g_opts, NULL)) != -1) {
		if (opt == '?' && optopt == 0) {
			cli_err(c, "unknown option '%s' (try --help)", argv[optind - 1]);
			return CLI_USAGE;
		}
		if (opt == ':' && optopt == 0) {
			cli_err(c, "option '%s' needs a value", argv[optind - 1]);
			return CLI_USAGE;
		}
		if ((rc = main_opt(c, opt)) != 0)
			return rc;
	}
	if (c->path != NULL && c->ram_size != 0) {
		cli_err(c, "give -f FILE or --ram SIZE, not both");
		return CLI_USAGE;
	}
	return 0;
}

/* script FILE [--keep-going]: the script's own arguments. */
static int main_script_args(struct cli *c, int argc, char **argv, const char **path)
{
	*path = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--keep-going") == 0 || strcmp(argv[i], "-k") == 0)
			c->keep_going = true;
		else if (*path == NULL && (argv[i][0] != '-' || argv[i][1] == '\0'))
			*path = argv[i];
		else
			return cli_bad_usage(c, "script", "usage: script FILE [--keep-going]");
	}
	if (*path == NULL)
		return cli_bad_usage(c, "script", "missing FILE ('-' for stdin)");
	return 0;
}

static void on_sigint(int sig)
{
	cli_interrupted = 1;
}

/* ^C stops a transfer at its next chunk; a second ^C (outside the shell) kills. */
static void main_signals(bool shell)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigint;
	sa.sa_flags = shell ? 0 : (int)SA_RESETHAND;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN); /* export to a closed pipe: EPIPE, one error line */
}

static int main_run(struct cli *c, int argc, char **argv)
{
	const char *script;
	int rc;

	if (strcmp(argv[0], "shell") == 0) {
		if (argc > 1)
			return cli_bad_usage(c, "shell", "takes no arguments");
		main_signals(true);
		return cli_shell(c);
	}
	main_signals(false);
	if (strcmp(argv[0], "script") == 0) {
		if ((rc = main_script_args(c, argc, argv, &script)) != 0)
			return rc;
		return cli_script(c, script);
	}
	return cli_dispatch(c, argc, argv);
}

int main(int argc, char **argv)
{
	struct cli c;
	int rc, rc2;

	memset(&c, 0, sizeof(c));
	c.lock_fd = -1;
	rc = main_options(&c, argc, argv);
	if (rc != 0)
		return rc < 0 ? CLI_OK : rc;
	if (optind >= argc) {
		cli_err(&c, "missing command (try 'blobcli --help')");
		return CLI_USAGE;
	}
	cli_setup(&c);
	if (rt_start(&c) != 0) {
		cli_err(&c, "cannot start the runtime thread");
		return CLI_FAIL;
	}
	rc = main_run(&c, argc - optind, argv + optind);
	rc2 = cli_close(&c);
	rt_stop(&c);
	free(c.created);
	return rc != CLI_OK ? rc : rc2;
}
