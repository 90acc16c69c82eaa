package hive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/rbee/rbee/internal/catalog"
	"github.com/rbee/rbee/internal/download"
	"github.com/rbee/rbee/internal/hf"
	"github.com/rbee/rbee/internal/jobs"
	"github.com/rbee/rbee/internal/modelref"
	"github.com/rbee/rbee/internal/wire"
)

// downloadProgressEvery throttles the progress events of a download: a
// person watching needs a few a second, and a long download must not
// crowd its job's event buffer.
const downloadProgressEvery = 500 * time.Millisecond

// hub is where the hive gets Hugging Face models: the hub client and the
// one downloader every job shares, so that two jobs wanting one file share
// one transfer.
type hub struct {
	client *hf.Client
	err    error // why there is no client: a bad HF_ENDPOINT or HF_TOKEN
	dl     *download.Downloader
}

// newHub uses c, or the hub HF_ENDPOINT and HF_TOKEN name. A bad setting is
// not fatal to the hive: only downloads fail, saying why.
func newHub(c *hf.Client, log *slog.Logger) *hub {
	if c == nil {
		var err error
		if c, err = hf.FromEnv(); err != nil {
			log.Warn("downloads from Hugging Face are off", "err", err)
			return &hub{err: err}
		}
	}
	return &hub{client: c, dl: download.New(download.Options{
		Policy:        c.Policy(),
		ProgressEvery: downloadProgressEvery,
		Logger:        log,
	})}
}

// fetchHF makes sure the model of an hf: reference is in the catalog,
// downloading it when it is not, with progress events on the job. The
// transfer runs in the downloader, not under any lock of the hive, so
// heartbeats and other jobs go on meanwhile.
func (h *Hive) fetchHF(j *jobs.Job, ref modelref.Ref) (wire.ModelInfo, error) {
	if info, ok := h.cat.Present(ref.ID); ok {
		if !fromRef(info, ref) {
			return wire.ModelInfo{}, wire.Errorf(wire.CodeModelExists, "model id %s already names %s (from %s); delete that model first to download %s",
				info.ID, info.Path, info.Source, ref)
		}
		h.narrate(j, "", "model_download", fmt.Sprintf("model %s is in the catalog already (%s)", info.ID, info.Source))
		return info, nil
	}
	if h.hub.err != nil {
		return wire.ModelInfo{}, wire.Errorf(wire.CodeBadRequest, "hive %s cannot download from Hugging Face: %v", h.cfg.HiveID, h.hub.err)
	}
	ctx, c := j.Context(), h.hub.client
	repo := ref.Owner + "/" + ref.Repo
	file := ref.File
	if file == "" {
		h.narrate(j, "", "model_list_files", fmt.Sprintf("listing the files of %s on %s", repo, c.Endpoint()))
		names, err := c.ListFiles(ctx, ref.Owner, ref.Repo)
		if err != nil {
			return wire.ModelInfo{}, h.hubError(ctx, err)
		}
		if file, err = hf.ChooseGGUF(names); err != nil {
			return wire.ModelInfo{}, wire.Errorf(wire.CodeNoChoice, "hf:%s: %v; name the file: hf:%s:FILE.gguf", repo, err, repo)
		}
		h.narrate(j, "", "model_choose", fmt.Sprintf("chose %s (preferring %s)", file, strings.Join(hf.Preference[:4], ", then ")))
	}
	// The chosen name came from the hub: it must make a valid reference
	// like one a person typed before it names anything on disk.
	full, err := modelref.Parse(modelref.HFPrefix + repo + ":" + file)
	if err != nil {
		return wire.ModelInfo{}, wire.Errorf(wire.CodeHubRefused, "the hub's file %.100q of %s cannot be used: %v", file, repo, err)
	}
	fi, err := c.Stat(ctx, ref.Owner, ref.Repo, "", file)
	if err != nil {
		return wire.ModelInfo{}, h.hubError(ctx, err)
	}
	name := catalog.HFName(ref.Owner, ref.Repo, file)
	h.narrate(j, "", "model_download", fmt.Sprintf("downloading %s of %s (%s) from %s", file, repo, sizeText(fi.Size), c.Endpoint()))
	start := time.Now()
	res, err := h.hub.dl.Get(ctx, download.Request{
		URL: fi.URL, Root: h.cat.Root(), Name: name, SHA256: fi.SHA256, Size: fi.Size,
	}, func(p download.Progress) {
		ev := wire.NewProgress(p.Done, p.Total, "bytes")
		ev.Rate = p.Rate
		j.Emit(ev)
	})
	if err != nil {
		return wire.ModelInfo{}, h.hubError(ctx, err)
	}
	h.narrate(j, "", "model_downloaded", downloadedText(file, res, time.Since(start)))
	info, err := h.cat.AddDownload(catalog.Download{ID: ref.ID, Source: full.String(), Name: name, File: file, SHA256: fi.SHA256})
	if err != nil {
		return wire.ModelInfo{}, h.catalogError(err)
	}
	h.narrate(j, "", "model_imported", fmt.Sprintf("model %s (%s, %s, %s) is in the catalog", info.ID, info.Architecture, info.Quantization, sizeText(info.SizeBytes)))
	return info, nil
}

// fromRef reports whether a catalog entry came from the reference: an
// imported file that happens to have the same id did not.
func fromRef(info wire.ModelInfo, ref modelref.Ref) bool {
	if ref.File != "" {
		return info.Source == ref.String()
	}
	return strings.HasPrefix(info.Source, modelref.HFPrefix+ref.Owner+"/"+ref.Repo+":")
}

func downloadedText(file string, res download.Result, took time.Duration) string {
	switch {
	case res.Cached:
		return fmt.Sprintf("%s was downloaded already; its SHA-256 checks out", file)
	case res.Shared:
		return fmt.Sprintf("%s arrived with a download another job started; SHA-256 verified", file)
	}
	round := 100 * time.Millisecond
	if took < time.Second {
		round = time.Millisecond
	}
	s := fmt.Sprintf("downloaded %s: %s in %s", file, sizeText(res.Transferred), took.Round(round))
	if sec := took.Seconds(); sec > 0 {
		s += fmt.Sprintf(" (%s/s)", sizeText(int64(float64(res.Transferred)/sec)))
	}
	if res.Resumed {
		s += fmt.Sprintf(", resuming a partial download of %s", sizeText(res.Size-res.Transferred))
	}
	return s + "; SHA-256 verified"
}

// hubError gives download failures the codes of the wire.
func (h *Hive) hubError(ctx context.Context, err error) error {
	var se *download.StatusError
	switch {
	case ctx.Err() != nil:
		return context.Cause(ctx)
	case errors.Is(err, hf.ErrNotFound):
		return wire.Errorf(wire.CodeNotFound, "%v", err)
	case errors.Is(err, hf.ErrAuth):
		return wire.Errorf(wire.CodeHubAuth, "%v", err)
	case errors.Is(err, hf.ErrHostile), errors.Is(err, hf.ErrNoDigest), errors.Is(err, download.ErrRefused):
		return wire.Errorf(wire.CodeHubRefused, "%v", err)
	case errors.Is(err, download.ErrDiskFull):
		return wire.Errorf(wire.CodeDiskFull, "hive %s: %v; free some space and download again", h.cfg.HiveID, err)
	case errors.Is(err, download.ErrMismatch):
		return wire.Errorf(wire.CodeChecksum, "%v", err)
	case errors.As(err, &se) && se.Status == 404:
		return wire.Errorf(wire.CodeNotFound, "%v", err)
	case errors.As(err, &se) && (se.Status == 401 || se.Status == 403):
		return wire.Errorf(wire.CodeHubAuth, "%v (set HF_TOKEN if the repository is gated)", err)
	}
	return wire.Errorf(wire.CodeDownloadFailed, "%v; downloading again resumes where it stopped", err)
}

// sizeText writes a byte count for people: "27.1 MiB".
func sizeText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
