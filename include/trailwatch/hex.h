/* hex.h: the value of a hexadecimal digit, for the decoders of JSON
 * (\uXXXX), URLs (%XX, SigV4 and S3 listings). */
#ifndef TRAILWATCH_HEX_H
#define TRAILWATCH_HEX_H

/* 0-15, or -1 when c is not a hex digit (either case). */
static inline int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

#endif
