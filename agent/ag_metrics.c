/*
 * What hpatchd publishes after each change: its view (for hpatch list and
 * status) and, when the policy names a path, metrics in Prometheus text
 * format for node_exporter's textfile collector, written atomically.
 */
#include "agent/agent_int.h"
#include "common/hp_err.h"
#include "common/hp_log.h"
#include "common/hp_util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void write_metrics(const struct ag_daemon *d, size_t nr_undecided)
{
	char *text = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&text, &len);
	int rc;

	if (!fp)
		return;
	/* 0 once stopped cleanly (a hpatchd killed leaves 1: systemd
	 * restarts it). */
	fprintf(fp,
		"# HELP hpatch_daemon_up Whether hpatchd runs (0: stopped "
		"cleanly).\n"
		"# TYPE hpatch_daemon_up gauge\n"
		"hpatch_daemon_up %d\n",
		!d->stopping);
	fprintf(fp,
		"# HELP hpatch_patches_installed Patches in the store.\n"
		"# TYPE hpatch_patches_installed gauge\n"
		"hpatch_patches_installed %zu\n",
		d->store.nr);
	fprintf(fp, "# HELP hpatch_processes Processes mapping a patch's "
		    "build, by state.\n"
		    "# TYPE hpatch_processes gauge\n");
	for (size_t i = 0; i < d->store.nr; i++) {
		uint64_t n[HP_TRACK_NR] = { 0 };

		for (size_t j = 0; j < d->nr_tracks; j++)
			if (!strcmp(d->tracks[j].t.patch_id,
				    d->store.entries[i].id))
				n[d->tracks[j].t.state]++;
		for (int s = 0; s < HP_TRACK_NR; s++)
			fprintf(fp,
				"hpatch_processes{patch=\"%s\",state=\"%s\"} "
				"%" PRIu64 "\n",
				d->store.entries[i].id,
				hp_track_state_name((enum hp_track_state)s),
				n[s]);
	}
	fprintf(fp,
		"# HELP hpatch_applied_total Applies done by hpatchd.\n"
		"# TYPE hpatch_applied_total counter\n"
		"hpatch_applied_total %" PRIu64 "\n"
		"# HELP hpatch_reverted_total Reverts of uninstalled patches.\n"
		"# TYPE hpatch_reverted_total counter\n"
		"hpatch_reverted_total %" PRIu64 "\n"
		"# HELP hpatch_failures_total Failed attempts (busy, "
		"refused).\n"
		"# TYPE hpatch_failures_total counter\n"
		"hpatch_failures_total %" PRIu64 "\n"
		"# HELP hpatch_fallbacks_total Fallbacks run.\n"
		"# TYPE hpatch_fallbacks_total counter\n"
		"hpatch_fallbacks_total %" PRIu64 "\n"
		"# HELP hpatch_fallbacks_failed_total Fallbacks that failed "
		"(a command's exit status or signal, a command that could "
		"not start, a restart refused).\n"
		"# TYPE hpatch_fallbacks_failed_total counter\n"
		"hpatch_fallbacks_failed_total %" PRIu64 "\n"
		"# HELP hpatch_last_pause_microseconds Pause of the last "
		"apply.\n"
		"# TYPE hpatch_last_pause_microseconds gauge\n"
		"hpatch_last_pause_microseconds %" PRIu64 "\n"
		"# HELP hpatch_processes_undecided Processes whose mapped "
		"builds hpatchd cannot tell now (whether a patch is for them "
		"is not known).\n"
		"# TYPE hpatch_processes_undecided gauge\n"
		"hpatch_processes_undecided %zu\n",
		d->view.applied, d->view.reverted, d->view.failures,
		d->view.fallbacks, d->view.fallbacks_failed,
		d->view.last_pause_us, nr_undecided);
	fclose(fp);
	rc = hp_write_file(d->pol.metrics_path, text, len, 0644,
			   HP_WRITE_NOSYNC);
	if (rc)
		hp_warn("metrics '%s': %s", d->pol.metrics_path, strerror(-rc));
	free(text);
}

/* The processes whose builds cannot be told now, into @v (malloc'd). */
static int list_undecided(const struct ag_daemon *d, struct hp_view *v)
{
	size_t n = 0;

	for (size_t i = 0; i < d->nr_procs; i++)
		n += d->procs[i].undecided > 0;
	v->undecided = calloc(n ? n : 1, sizeof(*v->undecided));
	if (!v->undecided)
		return -ENOMEM;
	for (size_t i = 0; i < d->nr_procs; i++) {
		const struct ag_proc *pr = &d->procs[i];
		struct hp_undecided *u = &v->undecided[v->nr_undecided];

		if (!pr->undecided)
			continue;
		u->pid = pr->pid;
		snprintf(u->reason, sizeof(u->reason), "%s",
			 hp_strerror(pr->undecided_rc));
		v->nr_undecided++;
	}
	return 0;
}

void ag_publish(struct ag_daemon *d)
{
	struct hp_view v = d->view;
	struct hp_track *tracks =
		calloc(d->nr_tracks ? d->nr_tracks : 1, sizeof(*tracks));
	int rc;

	if (!tracks || list_undecided(d, &v)) {
		free(tracks);
		return;
	}
	for (size_t i = 0; i < d->nr_tracks; i++)
		tracks[i] = d->tracks[i].t;
	v.tracks = tracks;
	v.nr_tracks = d->nr_tracks;
	v.updated = (uint64_t)time(NULL);
	rc = hp_view_write(&v, d->view_path);
	if (rc)
		hp_warn("view '%s': %s", d->view_path, strerror(-rc));
	if (d->pol.metrics_path[0])
		write_metrics(d, v.nr_undecided);
	free(tracks);
	free(v.undecided);
}
