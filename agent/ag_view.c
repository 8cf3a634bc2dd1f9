/*
 * The daemon's view of the host, one small text file in its state
 * directory, rewritten atomically after each change: what `hpatch list`
 * and `hpatch status` show of patches still pending, and why.
 */
#include "agent/agent.h"
#include "common/hp_util.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HP_VIEW_MAGIC "hpatchd-view 1"
#define HP_VIEW_MAX (16u << 20)

static const char *const state_names[HP_TRACK_NR] = {
	[HP_TRACK_APPLIED] = "applied", [HP_TRACK_PENDING] = "pending",
	[HP_TRACK_BUSY] = "busy",	[HP_TRACK_REFUSED] = "refused",
	[HP_TRACK_GAVE_UP] = "gave-up", [HP_TRACK_EXCLUDED] = "excluded",
};

const char *hp_track_state_name(enum hp_track_state st)
{
	return st < HP_TRACK_NR ? state_names[st] : "?";
}

static const char *const fallback_names[HP_FALLBACK_NR] = {
	[HP_FALLBACK_NONE] = "none",	   [HP_FALLBACK_UNKNOWN] = "unknown",
	[HP_FALLBACK_RUNNING] = "running", [HP_FALLBACK_OK] = "succeeded",
	[HP_FALLBACK_FAILED] = "failed",
};

const char *hp_fallback_result_name(enum hp_fallback_result r)
{
	return r < HP_FALLBACK_NR ? fallback_names[r] : "?";
}

static int state_by_name(const char *name)
{
	for (int i = 0; i < HP_TRACK_NR; i++)
		if (!strcmp(state_names[i], name))
			return i;
	return -1;
}

int hp_view_write(const struct hp_view *v, const char *path)
{
	char *text = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&text, &len);
	int rc;

	if (!fp)
		return -ENOMEM;
	fprintf(fp,
		HP_VIEW_MAGIC
		"\ndaemon_pid %d\nstarted %" PRIu64 "\nupdated %" PRIu64
		"\napplied %" PRIu64 "\nreverted %" PRIu64 "\nfailures %" PRIu64
		"\nfallbacks %" PRIu64 "\nfallbacks_failed %" PRIu64
		"\nlast_pause_us %" PRIu64 "\n",
		(int)v->daemon_pid, v->started, v->updated, v->applied,
		v->reverted, v->failures, v->fallbacks, v->fallbacks_failed,
		v->last_pause_us);
	for (size_t i = 0; i < v->nr_tracks; i++) {
		const struct hp_track *t = &v->tracks[i];
		char reason[sizeof(t->reason)];

		snprintf(reason, sizeof(reason), "%s", t->reason);
		reason[strcspn(reason, "\n")] = 0;
		fprintf(fp, "track %d %s %u %d %s %s\n", (int)t->pid,
			hp_track_state_name(t->state), t->tries,
			(int)t->fallback_result, t->patch_id, reason);
		/* What the fallback did, on a line of its own (an older
		 * hpatch skips it): the track's line ends with its reason. */
		if (t->fallback_result != HP_FALLBACK_NONE)
			fprintf(fp, "fallback %d %s %.*s\n", (int)t->pid,
				t->patch_id, (int)strcspn(t->fallback, "\n"),
				t->fallback);
	}
	for (size_t i = 0; i < v->nr_undecided; i++) {
		const struct hp_undecided *u = &v->undecided[i];

		fprintf(fp, "undecided %d %.*s\n", (int)u->pid,
			(int)strcspn(u->reason, "\n"), u->reason);
	}
	fclose(fp);
	rc = hp_write_file(path, text, len, 0644, HP_WRITE_NOSYNC);
	free(text);
	return rc;
}

/* @item (@size bytes) appended to the malloc'd array *@arrp of *@nr.
 * Return: 0 or -ENOMEM. */
static int append(void *arrp, size_t *nr, const void *item, size_t size)
{
	char *grown = realloc(*(void **)arrp, (*nr + 1) * size);

	if (!grown)
		return -ENOMEM;
	memcpy(grown + *nr * size, item, size);
	*(void **)arrp = grown;
	(*nr)++;
	return 0;
}

static int parse_track(struct hp_view *v, const char *line)
{
	struct hp_track t = { 0 };
	char state[32];
	int pid, fallback, used = 0;

	if (sscanf(line, "track %d %31s %u %d %63s %n", &pid, state, &t.tries,
		   &fallback, t.patch_id, &used) < 5 ||
	    state_by_name(state) < 0 || fallback < 0)
		return -EINVAL;
	t.pid = pid;
	t.state = (enum hp_track_state)state_by_name(state);
	/* An older hpatchd's 1 ("fallback done"), or a newer's result
	 * this one does not know: run, how it ended not told. */
	t.fallback_result = fallback < HP_FALLBACK_NR
				    ? (enum hp_fallback_result)fallback
				    : HP_FALLBACK_UNKNOWN;
	if (used)
		snprintf(t.reason, sizeof(t.reason), "%s", line + used);
	return append(&v->tracks, &v->nr_tracks, &t, sizeof(t));
}

/* "fallback PID ID TEXT": what the fallback of a track read before did. */
static int parse_fallback(struct hp_view *v, const char *line)
{
	char id[HP_PATCH_ID_MAX];
	int pid, used = 0;

	if (sscanf(line, "fallback %d %63s %n", &pid, id, &used) < 2)
		return -EINVAL;
	for (size_t i = v->nr_tracks; i-- > 0;) {
		struct hp_track *t = &v->tracks[i];

		if (t->pid == pid && !strcmp(t->patch_id, id)) {
			snprintf(t->fallback, sizeof(t->fallback), "%s",
				 used ? line + used : "");
			break;
		}
	}
	return 0;
}

static int parse_undecided(struct hp_view *v, const char *line)
{
	struct hp_undecided u = { 0 };
	int pid, used = 0;

	if (sscanf(line, "undecided %d %n", &pid, &used) < 1 || pid <= 0)
		return -EINVAL;
	u.pid = pid;
	if (used)
		snprintf(u.reason, sizeof(u.reason), "%s", line + used);
	return append(&v->undecided, &v->nr_undecided, &u, sizeof(u));
}

const struct hp_undecided *hp_view_undecided(const struct hp_view *v, pid_t pid)
{
	for (size_t i = 0; i < v->nr_undecided; i++)
		if (v->undecided[i].pid == pid)
			return &v->undecided[i];
	return NULL;
}

/* "name value" of one counter of @v. */
static void read_counter(struct hp_view *v, const char *line)
{
	const struct {
		const char *name;
		uint64_t *value;
	} counters[] = {
		{ "started", &v->started },
		{ "updated", &v->updated },
		{ "applied", &v->applied },
		{ "reverted", &v->reverted },
		{ "failures", &v->failures },
		{ "fallbacks", &v->fallbacks },
		{ "fallbacks_failed", &v->fallbacks_failed },
		{ "last_pause_us", &v->last_pause_us },
	};
	const size_t len = strcspn(line, " ");

	for (size_t i = 0; i < HP_ARRAY_SIZE(counters); i++)
		if (len == strlen(counters[i].name) &&
		    !strncmp(line, counters[i].name, len))
			*counters[i].value = strtoull(line + len, NULL, 10);
}

static bool is_running(pid_t pid)
{
	char path[64], comm[32] = "";
	FILE *fp = NULL;

	if (pid <= 0 || (kill(pid, 0) < 0 && errno != EPERM))
		return false;
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	fp = fopen(path, "re");
	if (!fp)
		return false;
	if (!fgets(comm, sizeof(comm), fp))
		comm[0] = 0;
	fclose(fp);
	return !strncmp(comm, "hpatchd", 7);
}

int hp_view_read(struct hp_view *v, const char *path)
{
	uint8_t *text = NULL;
	size_t len = 0;
	char *save = NULL;
	int rc = hp_read_file(path, HP_VIEW_MAX, &text, &len);
	int pid = 0;

	*v = (struct hp_view){ 0 };
	if (rc)
		return rc;
	if (strncmp((char *)text, HP_VIEW_MAGIC "\n",
		    strlen(HP_VIEW_MAGIC) + 1))
		rc = -EINVAL;
	for (char *l = strtok_r((char *)text, "\n", &save); l && !rc;
	     l = strtok_r(NULL, "\n", &save)) {
		if (!strncmp(l, "track ", 6))
			rc = parse_track(v, l);
		else if (!strncmp(l, "undecided ", 10))
			rc = parse_undecided(v, l);
		else if (!strncmp(l, "fallback ", 9))
			rc = parse_fallback(v, l);
		else if (sscanf(l, "daemon_pid %d", &pid) == 1)
			v->daemon_pid = pid;
		else
			read_counter(v, l);
	}
	free(text);
	if (rc) {
		hp_view_release(v);
		return rc;
	}
	return is_running(v->daemon_pid) ? 0 : -ESRCH;
}

void hp_view_release(struct hp_view *v)
{
	free(v->tracks);
	free(v->undecided);
	*v = (struct hp_view){ 0 };
}

void hp_track_out_fallback(struct hp_out *o, const struct hp_track *t)
{
	hp_out_bool(o, "fallback_done", t->fallback_result != HP_FALLBACK_NONE);
	hp_out_str(o, "fallback_result", "%s",
		   hp_fallback_result_name(t->fallback_result));
	hp_out_str(o, "fallback", "%s", t->fallback);
}

void hp_view_out(struct hp_out *o, const char *state_dir)
{
	char path[PATH_MAX];
	struct hp_view v;
	int rc;

	snprintf(path, sizeof(path), "%s/%s", state_dir, HP_AGENT_VIEW_FILE);
	rc = hp_view_read(&v, path);
	hp_out_begin_object(o, "daemon");
	hp_out_bool(o, "running", rc == 0);
	if (rc && rc != -ESRCH) {
		hp_out_end_object(o);
		return;
	}
	hp_out_i64(o, "pid", v.daemon_pid);
	hp_out_u64(o, "started", v.started);
	hp_out_u64(o, "updated", v.updated);
	hp_out_u64(o, "applied", v.applied);
	hp_out_u64(o, "reverted", v.reverted);
	hp_out_u64(o, "failures", v.failures);
	hp_out_u64(o, "fallbacks", v.fallbacks);
	hp_out_u64(o, "fallbacks_failed", v.fallbacks_failed);
	hp_out_u64(o, "last_pause_us", v.last_pause_us);
	hp_out_begin_array(o, "processes");
	for (size_t i = 0; i < v.nr_tracks; i++) {
		const struct hp_track *t = &v.tracks[i];

		hp_out_begin_object(o, NULL);
		hp_out_i64(o, "pid", t->pid);
		hp_out_str(o, "patch_id", "%s", t->patch_id);
		hp_out_str(o, "state", "%s", hp_track_state_name(t->state));
		hp_out_u64(o, "tries", t->tries);
		hp_out_str(o, "reason", "%s", t->reason);
		hp_track_out_fallback(o, t);
		hp_out_end_object(o);
	}
	hp_out_end_array(o);
	/* Its builds cannot be told: whether a patch is for it is not known. */
	hp_out_begin_array(o, "undecided");
	for (size_t i = 0; i < v.nr_undecided; i++) {
		hp_out_begin_object(o, NULL);
		hp_out_i64(o, "pid", v.undecided[i].pid);
		hp_out_str(o, "reason", "%s", v.undecided[i].reason);
		hp_out_end_object(o);
	}
	hp_out_end_array(o);
	hp_out_end_object(o);
	hp_view_release(&v);
}
