/* diag.c: the list of file:line:column errors (see diag.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trailwatch/array.h"
#include "trailwatch/diag.h"

void diag_init(struct diag *d)
{
	memset(d, 0, sizeof(*d));
}

void diag_free(struct diag *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->count; i++)
		free(d->messages[i]);
	free(d->messages);
	memset(d, 0, sizeof(*d));
}

static void add(struct diag *d, const char *file, unsigned line, unsigned col, const char *kind,
		const char *fmt, va_list ap)
{
	char text[2048], where[512];
	char *msg = NULL;

	if (d->count >= DIAG_MAX_MESSAGES)
		goto drop;
	{
		char **m = array_grow(d->messages, &d->cap, d->count + 1, sizeof(*m), 16);
		if (!m)
			goto drop;
		d->messages = m;
	}
	vsnprintf(text, sizeof(text), fmt, ap);
	if (line && col)
		snprintf(where, sizeof(where), "%s:%u:%u", file, line, col);
	else if (line)
		snprintf(where, sizeof(where), "%s:%u", file, line);
	else
		snprintf(where, sizeof(where), "%s", file);
	if (asprintf(&msg, "%s: %s%s", where, kind, text) < 0)
		goto drop;
	d->messages[d->count++] = msg;
	return;
drop:
	d->dropped++;
}

void diag_add(struct diag *d, const char *file, unsigned line, unsigned col, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	add(d, file, line, col, "", fmt, ap);
	va_end(ap);
}

void diag_warn(struct diag *d, const char *file, unsigned line, unsigned col, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	add(d, file, line, col, "warning: ", fmt, ap);
	va_end(ap);
	d->warnings++;
}

size_t diag_errors(const struct diag *d)
{
	return d->count + d->dropped - d->warnings;
}

void diag_print(const struct diag *d, FILE *f)
{
	for (size_t i = 0; i < d->count; i++)
		fprintf(f, "%s\n", d->messages[i]);
	if (d->dropped)
		fprintf(f, "(%zu more errors not shown)\n", d->dropped);
}
