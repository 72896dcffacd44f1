/* msg.c: error-message buffers (see msg.h). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "trailwatch/msg.h"

static void msg_vset(char *msg, size_t msglen, const char *fmt, va_list ap)
{
	if (msg && msglen)
		vsnprintf(msg, msglen, fmt, ap);
}

void msg_set(char *msg, size_t msglen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	msg_vset(msg, msglen, fmt, ap);
	va_end(ap);
}

void msg_append(char *msg, size_t msglen, const char *fmt, ...)
{
	va_list ap;
	size_t n;

	if (!msg || !msglen)
		return;
	n = strnlen(msg, msglen);
	if (n + 1 >= msglen)
		return;
	va_start(ap, fmt);
	vsnprintf(msg + n, msglen - n, fmt, ap);
	va_end(ap);
}

int msg_fail(char *msg, size_t msglen, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	msg_vset(msg, msglen, fmt, ap);
	va_end(ap);
	return err;
}
