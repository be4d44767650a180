/*
 * test_install.c - make install and what it installs: into a temporary
 * DESTDIR, the files land where PREFIX says and nothing else is written;
 * libupage.so has its soname and exports exactly the functions of
 * <upage/upage.h>; a program built outside the tree with pkg-config
 * (shared, and static from libupage.a) is served by a private daemon; the
 * man pages render with man -l without a warning; the units pass
 * systemd-analyze verify with the paths of a PREFIX install; make uninstall
 * takes every file away again.
 *
 * It installs from the plain build (BUILD=build): the external programs are
 * not built with the sanitizers, so an ASan libupage would not load in
 * them. The outer make's variables are kept away from the inner one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "upaged_harness.h"

static char top[4096];   /* the source tree */
static char dest[64];    /* DESTDIR */
static char pfx[128];    /* a PREFIX install, for the units' paths */

/* Runs cmd with sh; its stdout+stderr in out; the exit status. */
static int run(char *out, size_t size, const char *fmt, ...)
{
	char cmd[8192], line[8300];
	size_t len = 0;
	va_list ap;
	FILE *f;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	snprintf(line, sizeof(line), "{ %s\n} 2>&1", cmd);
	f = popen(line, "r");
	assert_non_null(f);
	if (out) {
		len = fread(out, 1, size - 1, f);
		out[len] = '\0';
	} else {
		char sink[4096];

		while (fread(sink, 1, sizeof(sink), f) > 0)
			;
	}
	st = pclose(f);
	if (st != 0 && out)
		fprintf(stderr, "$ %s\n%s", cmd, out);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

#define MAKE "env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u MAKEOVERRIDES " \
	     "make -s --no-print-directory -C %s BUILD=build"

static int group_setup(void **state)
{
	static char out[65536];

	if (!getcwd(top, sizeof(top)))
		return -1;
	strcpy(dest, "/tmp/upaged-inst-XXXXXX");
	if (!mkdtemp(dest))
		return -1;
	snprintf(pfx, sizeof(pfx), "%s/prefix", dest);
	if (run(out, sizeof(out), MAKE " install DESTDIR=%s/root", top,
		dest) != 0)
		return -1;
	if (run(out, sizeof(out), MAKE " install PREFIX=%s", top, pfx) != 0)
		return -1;
	return 0;
}

static int group_teardown(void **state)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dest);
	return system(cmd) == 0 ? 0 : -1;
}

static bool exists(const char *fmt, const char *a)
{
	char path[512];
	struct stat st;

	snprintf(path, sizeof(path), fmt, dest, a);
	return lstat(path, &st) == 0;
}

static void test_files_in_place(void **state)
{
	static const char *const files[] = {
		"sbin/upaged", "lib/libupage.so.0.1.0", "lib/libupage.so.0",
		"lib/libupage.so", "lib/libupage.a",
		"lib/pkgconfig/libupage.pc", "include/upage/upage.h",
		"include/upage/proto.h", "lib/systemd/system/upaged.service",
		"lib/systemd/system/upaged.socket",
		"lib/udev/rules.d/60-upaged-userfaultfd.rules",
		"lib/sysusers.d/upaged.conf", "share/man/man8/upaged.8",
		"share/man/man1/upagectl.1", "share/man/man1/upage-run.1",
		"share/man/man3/libupage.3",
		"share/doc/upaged/upaged.conf.example",
	};
	char out[4096], link[256], path[512];
	ssize_t n;

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		if (!exists("%s/root/usr/local/%s", files[i]))
			fail_msg("not installed: /usr/local/%s", files[i]);
	}
	/* The shim and upagectl go in when they are built. */
	if (access("build/libupage-preload.so", F_OK) == 0)
		assert_true(exists("%s/root/usr/local/%s",
				   "lib/upage/libupage-preload.so"));
	if (access("build/upagectl", F_OK) == 0)
		assert_true(exists("%s/root/usr/local/%s", "bin/upagectl"));
	/* Nothing outside the prefix. */
	assert_int_equal(run(out, sizeof(out), "find %s/root -mindepth 1 "
			     "-maxdepth 2 ! -path %s/root/usr ! -path "
			     "%s/root/usr/local", dest, dest, dest), 0);
	assert_string_equal(out, "");
	/* The soname chain. */
	snprintf(path, sizeof(path), "%s/root/usr/local/lib/libupage.so", dest);
	n = readlink(path, link, sizeof(link) - 1);
	assert_true(n > 0);
	link[n] = '\0';
	assert_string_equal(link, "libupage.so.0");
	assert_int_equal(run(out, sizeof(out), "readelf -d %s.0.1.0", path), 0);
	assert_non_null(strstr(out, "Library soname: [libupage.so.0]"));
	/* The service names the installed daemon. */
	assert_int_equal(run(out, sizeof(out), "grep ^ExecStart= "
			     "%s/root/usr/local/lib/systemd/system/upaged.service",
			     dest), 0);
	assert_string_equal(out, "ExecStart=/usr/local/sbin/upaged "
				 "--foreground --cache-dir /run/upaged/cache\n");
}

/* Exported symbols are exactly the functions upage.h declares. */
static void test_exported_symbols(void **state)
{
	char exported[8192], declared[8192];

	assert_int_equal(run(exported, sizeof(exported),
			     "nm -D --defined-only %s/root/usr/local/lib/"
			     "libupage.so | awk '$2 == \"T\" {sub(/@.*/, \"\", "
			     "$3); print $3}' | sort", dest), 0);
	assert_int_equal(run(declared, sizeof(declared),
			     "grep -o '\\bupage_[a-z_]*(' %s/root/usr/local/"
			     "include/upage/upage.h | tr -d '(' | sort -u",
			     dest), 0);
	assert_true(strlen(declared) > 100);
	assert_string_equal(exported, declared);
	/* Versioned: the node of the version script. */
	assert_int_equal(run(exported, sizeof(exported),
			     "nm -D --defined-only %s/root/usr/local/lib/"
			     "libupage.so | grep -c '@@LIBUPAGE_0'", dest), 0);
}

static const char prog_src[] =
	"#include <errno.h>\n"
	"#include <stdio.h>\n"
	"#include <string.h>\n"
	"#include <sys/mman.h>\n"
	"#include <upage/upage.h>\n"
	"int main(void)\n"
	"{\n"
	"	char line[512], lib[512] = \"none\";\n"
	"	unsigned char *p;\n"
	"	FILE *maps;\n"
	"	int kind = upage_uffd_kind(), r = upage_connect(NULL);\n"
	"	if (r < 0) {\n"
	"		fprintf(stderr, \"connect: %s\\n\", strerror(-r));\n"
	"		return 1;\n"
	"	}\n"
	"	p = upage_mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE,\n"
	"		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);\n"
	"	if (p == MAP_FAILED)\n"
	"		return 2;\n"
	"	for (int i = 0; i < 1 << 20; i++)\n"
	"		if (p[i])\n"
	"			return 3;\n"
	"	for (int i = 0; i < 1 << 20; i++)\n"
	"		p[i] = (unsigned char)(i % 251);\n"
	"	for (int i = 0; i < 1 << 20; i++)\n"
	"		if (p[i] != (unsigned char)(i % 251))\n"
	"			return 4;\n"
	"	maps = fopen(\"/proc/self/maps\", \"r\");\n"
	"	while (maps && fgets(line, sizeof(line), maps))\n"
	"		if (strstr(line, \"libupage\"))\n"
	"			sscanf(strchr(line, '/'), \"%511s\", lib);\n"
	"	printf(\"external ok kind %d lib %s\\n\", kind, lib);\n"
	"	return upage_munmap(p, 1 << 20) || upage_disconnect();\n"
	"}\n";

static void test_external_program_pkg_config(void **state)
{
	char pc[256], flags[1024], out[4096], want[512], *nl;
	struct harness h;
	FILE *f;

	snprintf(pc, sizeof(pc),
		 "PKG_CONFIG_PATH=%s/root/usr/local/lib/pkgconfig "
		 "PKG_CONFIG_SYSROOT_DIR=%s/root", dest, dest);
	assert_int_equal(run(flags, sizeof(flags),
			     "%s pkg-config --cflags --libs libupage", pc), 0);
	nl = strchr(flags, '\n');
	if (nl)
		*nl = '\0';
	snprintf(want, sizeof(want), "-I%s/root/usr/local/include", dest);
	assert_non_null(strstr(flags, want));
	snprintf(want, sizeof(want), "-L%s/root/usr/local/lib -lupage", dest);
	assert_non_null(strstr(flags, want));

	snprintf(want, sizeof(want), "%s/prog.c", dest);
	f = fopen(want, "we");
	assert_non_null(f);
	fputs(prog_src, f);
	assert_int_equal(fclose(f), 0);
	/* Outside the tree: only what the installation provides. */
	assert_int_equal(run(out, sizeof(out), "cd %s && cc -std=gnu11 -Wall "
			     "-Werror -o prog prog.c %s", dest, flags), 0);
	assert_int_equal(run(out, sizeof(out), "cd %s && cc -std=gnu11 -Wall "
			     "-Werror -o prog-static prog.c $(%s pkg-config "
			     "--cflags libupage) %s/root/usr/local/lib/"
			     "libupage.a -pthread", dest, pc, dest), 0);

	assert_int_equal(harness_start(&h), 0);
	assert_int_equal(run(out, sizeof(out), "UPAGED_SOCKET=%s "
			     "LD_LIBRARY_PATH=%s/root/usr/local/lib %s/prog",
			     h.sock, dest, dest), 0);
	snprintf(want, sizeof(want), "external ok kind 1 lib "
		 "%s/root/usr/local/lib/libupage.so.0.1.0\n", dest);
	assert_string_equal(out, want);
	assert_int_equal(run(out, sizeof(out), "UPAGED_SOCKET=%s %s/prog-static",
			     h.sock, dest), 0);
	assert_string_equal(out, "external ok kind 1 lib none\n");
	assert_int_equal(harness_stop(&h), 0);
}

static void test_man_pages_render(void **state)
{
	static const char *const pages[] = {
		"man8/upaged.8", "man1/upagectl.1", "man1/upage-run.1",
		"man3/libupage.3",
	};
	char out[65536];

	for (size_t i = 0; i < sizeof(pages) / sizeof(pages[0]); i++) {
		/* Warnings only: the page itself goes to /dev/null. */
		assert_int_equal(run(out, sizeof(out), "MANWIDTH=80 man "
				     "--warnings -l %s/root/usr/local/share/man/"
				     "%s 2>&1 >/dev/null", dest, pages[i]), 0);
		assert_string_equal(out, "");
		assert_int_equal(run(out, sizeof(out), "MANWIDTH=80 man -l "
				     "%s/root/usr/local/share/man/%s", dest,
				     pages[i]), 0);
		assert_non_null(strstr(out, "NAME"));
		assert_non_null(strstr(out, "SEE ALSO"));
	}
}

static void test_units_verify(void **state)
{
	char out[8192];

	if (run(out, sizeof(out), "command -v systemd-analyze") != 0)
		skip();
	/* With the PREFIX install, ExecStart= and Documentation= resolve. */
	assert_int_equal(run(out, sizeof(out), "cd %s/lib/systemd/system && "
			     "MANPATH=%s/share/man systemd-analyze verify "
			     "./upaged.socket ./upaged.service", pfx, pfx), 0);
	assert_null(strstr(out, "upaged"));
	assert_int_equal(run(out, sizeof(out), "grep ^ExecStart= %s/lib/"
			     "systemd/system/upaged.service", pfx), 0);
	assert_non_null(strstr(out, pfx));
}

/* upage-run of a PREFIX install preloads the shim installed beside it. */
static void test_upage_run_uses_installed_shim(void **state)
{
	char out[1024], want[512];

	if (access("client/upage-run.c", F_OK) < 0 ||
	    access("lib/preload.c", F_OK) < 0)
		skip();
	assert_int_equal(run(out, sizeof(out), "env -u UPAGE_PRELOAD -u "
			     "LD_PRELOAD UPAGED_SOCKET=%s/none.sock "
			     "%s/bin/upage-run -- sh -c 'echo $LD_PRELOAD'",
			     dest, pfx), 0);
	snprintf(want, sizeof(want), "%s/lib/upage/libupage-preload.so\n", pfx);
	assert_string_equal(out, want);
}

static void test_uninstall_removes_everything(void **state)
{
	char out[8192];

	assert_int_equal(run(out, sizeof(out), MAKE " uninstall DESTDIR=%s/root",
			     top, dest), 0);
	assert_int_equal(run(out, sizeof(out), "find %s/root ! -type d", dest),
			 0);
	assert_string_equal(out, "");
	assert_int_equal(run(out, sizeof(out), MAKE " uninstall PREFIX=%s",
			     top, pfx), 0);
	assert_int_equal(run(out, sizeof(out), "find %s ! -type d", pfx), 0);
	assert_string_equal(out, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_files_in_place),
		cmocka_unit_test(test_exported_symbols),
		cmocka_unit_test(test_external_program_pkg_config),
		cmocka_unit_test(test_man_pages_render),
		cmocka_unit_test(test_units_verify),
		cmocka_unit_test(test_upage_run_uses_installed_shim),
		cmocka_unit_test(test_uninstall_removes_everything),
	};

	if (access("Makefile", R_OK) < 0 || access(harness_bin(), X_OK) < 0)
		return 77;
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
