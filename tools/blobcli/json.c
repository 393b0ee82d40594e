/*
 * A small JSON writer for --json output: objects, arrays, strings (escaped
 * per RFC 8259), unsigned numbers, booleans, null. Blob ids are strings
 * ("0x100000000"): 64-bit ids do not survive a double. Indented two
 * spaces, one member per line.
 */
#include <inttypes.h>
#include <string.h>

#include "cli.h"

#define JSON_MAX_DEPTH 15

void json_init(struct json *j, FILE *out)
{
	memset(j, 0, sizeof(*j));
	j->out = out;
	j->first[0] = true;
}

static void json_indent(struct json *j)
{
	fputc('\n', j->out);
	for (int i = 0; i < j->depth; i++)
		fputs("  ", j->out);
}

static void json_escaped(struct json *j, const char *s, size_t len)
{
	fputc('"', j->out);
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == '"' || ch == '\\')
			fprintf(j->out, "\\%c", ch);
		else if (ch == '\n')
			fputs("\\n", j->out);
		else if (ch == '\t')
			fputs("\\t", j->out);
		else if (ch == '\r')
			fputs("\\r", j->out);
		else if (ch < 0x20 || ch == 0x7f)
			fprintf(j->out, "\\u%04x", ch);
		else
			fputc(ch, j->out);
	}
	fputc('"', j->out);
}

/* Separator, newline, indent and "key": before a value. */
static void json_member(struct json *j, const char *key)
{
	if (!j->first[j->depth])
		fputc(',', j->out);
	j->first[j->depth] = false;
	if (j->depth > 0)
		json_indent(j);
	if (key != NULL) {
		json_escaped(j, key, strlen(key));
		fputs(": ", j->out);
	}
}

static void json_open(struct json *j, const char *key, char ch)
{
	json_member(j, key);
	fputc(ch, j->out);
	if (j->depth < JSON_MAX_DEPTH)
		j->depth++;
	j->first[j->depth] = true;
}

static void json_close(struct json *j, char ch)
{
	bool empty = j->first[j->depth];

	if (j->depth > 0)
		j->depth--;
	if (!empty)
		json_indent(j);
	fputc(ch, j->out);
}

void json_obj_begin(struct json *j, const char *key)
{
	json_open(j, key, '{');
}

void json_obj_end(struct json *j)
{
	json_close(j, '}');
}

void json_arr_begin(struct json *j, const char *key)
{
	json_open(j, key, '[');
}

void json_arr_end(struct json *j)
{
	json_close(j, ']');
}

void json_strn(struct json *j, const char *key, const void *s, size_t len)
{
	json_member(j, key);
	json_escaped(j, s, len);
}

void json_str(struct json *j, const char *key, const char *s)
{
	json_strn(j, key, s, strlen(s));
}

void json_u64(struct json *j, const char *key, uint64_t v)
{
	json_member(j, key);
	fprintf(j->out, "%" PRIu64, v);
}

void json_bool(struct json *j, const char *key, bool v)
{
	json_member(j, key);
	fputs(v ? "true" : "false", j->out);
}

void json_null(struct json *j, const char *key)
{
	json_member(j, key);
	fputs("null", j->out);
}

void json_id(struct json *j, const char *key, uint64_t id)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "0x%" PRIx64, id);
	json_str(j, key, buf);
}

void json_end(struct json *j)
{
	fputc('\n', j->out);
}
