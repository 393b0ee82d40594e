/*
 * Standalone driver for the loader fuzzer where libFuzzer is not available
 * (gcc): runs LLVMFuzzerTestOneInput once per file. Arguments are files or
 * directories (every regular file in them, sorted by name).
 * Exit 0 if every input ran; a bug in an input aborts the process.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REPLAY_MAX_INPUT (1u << 20)

static int replay_file(const char *path)
{
	uint8_t *buf = malloc(REPLAY_MAX_INPUT);
	FILE *f = fopen(path, "rb");
	size_t n;

	if (buf == NULL || f == NULL) {
		fprintf(stderr, "replay: cannot read %s\n", path);
		free(buf);
		if (f != NULL)
			fclose(f);
		return -1;
	}
	n = fread(buf, 1, REPLAY_MAX_INPUT, f);
	fclose(f);
	LLVMFuzzerTestOneInput(buf, n);
	free(buf);
	return 0;
}

static int replay_filter(const struct dirent *d)
{
	return d->d_name[0] != '.';
}

static int replay_dir(const char *dir, int *count)
{
	struct dirent **list;
	int n = scandir(dir, &list, replay_filter, alphasort), rc = 0;
	char path[4096];

	if (n < 0) {
		fprintf(stderr, "replay: cannot list %s\n", dir);
		return -1;
	}
	for (int i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, list[i]->d_name);
		if (rc == 0 && replay_file(path) != 0)
			rc = -1;
		(*count)++;
		free(list[i]);
	}
	free(list);
	return rc;
}

int main(int argc, char **argv)
{
	int count = 0, rc = 0;
	struct stat st;

	for (int i = 1; i < argc && rc == 0; i++) {
		if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
			rc = replay_dir(argv[i], &count);
		} else {
			rc = replay_file(argv[i]);
			count++;
		}
	}
	printf("replay: %d inputs, %s\n", count, rc == 0 ? "all passed" : "error");
	return rc == 0 ? 0 : 1;
}
