/* jsonw.c: JSON text output (see jsonw.h). */
#include <string.h>

#include "trailwatch/jsonw.h"

int jsonw_string(struct buf *b, const char *s, size_t len)
{
	int r = buf_append(b, "\"", 1);

	if (r == 0)
		r = jsonw_escaped(b, s, len);
	return r ? r : buf_append(b, "\"", 1);
}

int jsonw_escaped(struct buf *b, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t start = 0;
	int r = 0;

	for (size_t i = 0; i < len && r == 0; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[6];
		size_t n = 0;

		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			n = 2;
		} else if (c < 0x20) {
			switch (c) {
			case '\n': memcpy(esc, "\\n", 2); n = 2; break;
			case '\r': memcpy(esc, "\\r", 2); n = 2; break;
			case '\t': memcpy(esc, "\\t", 2); n = 2; break;
			default:
				memcpy(esc, "\\u00", 4);
				esc[4] = hex[c >> 4];
				esc[5] = hex[c & 15];
				n = 6;
			}
		} else {
			continue;
		}
		r = buf_append(b, s + start, i - start);
		if (r == 0)
			r = buf_append(b, esc, n);
		start = i + 1;
	}
	if (r == 0)
		r = buf_append(b, s + start, len - start);
	return r;
}

int jsonw_member_str(struct buf *b, const char *key, const char *value, int first)
{
	int r = buf_append(b, first ? "" : ",", first ? 0 : 1);

	if (r == 0)
		r = jsonw_string(b, key, strlen(key));
	if (r == 0)
		r = buf_append(b, ":", 1);
	if (r == 0)
		r = value ? jsonw_string(b, value, strlen(value)) : buf_append(b, "null", 4);
	return r;
}

int jsonw_member_strs(struct buf *b, const char *key, const char *const *values, size_t n, int first)
{
	int r = buf_append(b, first ? "" : ",", first ? 0 : 1);

	if (r == 0)
		r = jsonw_string(b, key, strlen(key));
	if (r == 0)
		r = buf_append(b, ":[", 2);
	for (size_t i = 0; i < n && r == 0; i++) {
		if (i)
			r = buf_append(b, ",", 1);
		if (r == 0)
			r = jsonw_string(b, values[i], strlen(values[i]));
	}
	if (r == 0)
		r = buf_append(b, "]", 1);
	return r;
}
