/* statefile.c: atomic replacement of small files (see statefile.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <linux/magic.h>

#include "trailwatch/sigv4.h"
#include "trailwatch/statefile.h"

int statefile_mkdirs(const char *dir, char *msg, size_t msglen)
{
	char path[4096];
	size_t len = strlen(dir);

	if (len == 0 || len >= sizeof(path)) {
		snprintf(msg, msglen, "%s: invalid directory name", dir);
		return -EINVAL;
	}
	memcpy(path, dir, len + 1);
	for (char *p = path + 1; ; p++) {
		if (*p == '/' || *p == '\0') {
			char c = *p;
			*p = '\0';
			if (mkdir(path, 0700) < 0 && errno != EEXIST) {
				int e = errno;
				snprintf(msg, msglen, "%s: cannot create: %s", path, strerror(e));
				return -e;
			}
			*p = c;
			if (c == '\0')
				break;
		}
	}
	return 0;
}

int statefile_check_mkdirs(const char *dir, char *msg, size_t msglen)
{
	char path[4096];
	size_t len = strlen(dir);
	struct statfs sf;
	struct stat st;

	if (len == 0 || len >= sizeof(path)) {
		snprintf(msg, msglen, "%s: invalid directory name", dir);
		return -EINVAL;
	}
	memcpy(path, dir, len + 1);
	for (char *p = path + 1; ; p++) {
		if (*p == '/' || *p == '\0') {
			char c = *p;
			*p = '\0';
			if (stat(path, &st) < 0) {
				int e = errno;
				char *slash = strrchr(path, '/');
				if (e != ENOENT) {
					snprintf(msg, msglen, "%s: %s", path, strerror(e));
					return -e;
				}
				/* the first part missing: its parent must let us create it */
				if (slash == path)
					slash[1] = '\0';
				else
					*slash = '\0';
				if (access(path, W_OK | X_OK) < 0) {
					e = errno;
					snprintf(msg, msglen, "%s: cannot create %s in it: %s", path, dir, strerror(e));
					return -e;
				}
				/* access() says yes to root on proc and sysfs, where
				 * no directory can be made */
				if (statfs(path, &sf) == 0 && (sf.f_type == PROC_SUPER_MAGIC ||
							       sf.f_type == SYSFS_MAGIC)) {
					snprintf(msg, msglen, "%s: cannot create %s in it: a proc or sysfs file system",
						 path, dir);
					return -EACCES;
				}
				return 0;
			}
			if (!S_ISDIR(st.st_mode)) {
				snprintf(msg, msglen, "%s: not a directory", path);
				return -ENOTDIR;
			}
			*p = c;
			if (c == '\0')
				break;
		}
	}
	if (access(dir, W_OK | X_OK) < 0) {
		int e = errno;
		snprintf(msg, msglen, "%s: cannot write in it: %s", dir, strerror(e));
		return -e;
	}
	return 0;
}

static int sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		r = -errno;
	close(fd);
	return r;
}

int statefile_write(const char *dir, const char *name, const void *data, size_t len, char *msg, size_t msglen)
{
	char tmp[4096], path[4096];
	const char *p = data;
	int fd = -1, r = 0;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path) ||
	    (size_t)snprintf(tmp, sizeof(tmp), "%s/%s.tmp", dir, name) >= sizeof(tmp)) {
		snprintf(msg, msglen, "%s/%s: path too long", dir, name);
		return -ENAMETOOLONG;
	}
	/* A fresh file, never one planted at the temporary name (a symlink
	 * there would make the write land elsewhere). */
	if (unlink(tmp) < 0 && errno != ENOENT) {
		r = -errno;
		snprintf(msg, msglen, "%s: cannot remove: %s", tmp, strerror(-r));
		return r;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = -errno;
		snprintf(msg, msglen, "%s: cannot create: %s", tmp, strerror(-r));
		return r;
	}
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			snprintf(msg, msglen, "%s: cannot write: %s", tmp, strerror(-r));
			goto out;
		}
		p += n;
		len -= (size_t)n;
	}
	if (fsync(fd) < 0) {
		r = -errno;
		snprintf(msg, msglen, "%s: cannot fsync: %s", tmp, strerror(-r));
		goto out;
	}
	if (close(fd) < 0) {
		fd = -1;
		r = -errno;
		snprintf(msg, msglen, "%s: cannot close: %s", tmp, strerror(-r));
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		r = -errno;
		snprintf(msg, msglen, "%s: cannot rename to %s: %s", tmp, path, strerror(-r));
		goto out;
	}
	r = sync_dir(dir);
	if (r < 0)
		snprintf(msg, msglen, "%s: cannot fsync the directory: %s", dir, strerror(-r));
out:
	if (fd >= 0)
		close(fd);
	if (r < 0)
		unlink(tmp);
	return r;
}

int statefile_read(const char *dir, const char *name, struct buf *out, char *msg, size_t msglen)
{
	char path[4096];

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path)) {
		snprintf(msg, msglen, "%s/%s: path too long", dir, name);
		return -ENAMETOOLONG;
	}
	return buf_read_file(out, path, msg, msglen);
}

char *statefile_name(const char *key, const char *suffix)
{
	size_t len = strlen(key), slen = strlen(suffix), o = 0, size = 3 * len + slen + 32;
	char *out = malloc(size);

	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)key[i];
		if (c == '/')
			out[o++] = '_';
		else if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
			 c == '-')
			out[o++] = (char)c;
		else
			o += (size_t)snprintf(out + o, size - o, "%%%02X", c);
	}
	out[o] = '\0';
	if (o > STATEFILE_NAME_MAX) {
		char hex[SIGV4_HEX];
		sigv4_sha256_hex(key, len, hex);
		snprintf(out + 150, size - 150, "-%.24s", hex);
	}
	strcat(out, suffix);
	return out;
}
