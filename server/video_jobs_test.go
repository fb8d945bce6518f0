package server_test

import (
	"bytes"
	"image"
	"image/jpeg"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
	"github.com/flock-social/flock/internal/media/bucket"
	"github.com/flock-social/flock/internal/store"
	tu "github.com/flock-social/flock/internal/testutil"
	"github.com/flock-social/flock/internal/video"
	"github.com/flock-social/flock/server"
)

// The processing job is durable: a video uploaded to an instance that
// stops before processing it is processed by the next one to start.
func TestVideoJobs_SurviveARestart(t *testing.T) {
	t.Parallel()
	mp4 := mp4Fixture(t, "160x120", 10, 1)
	for _, engine := range tu.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			shared, _, token, id := uploadThenStop(t, engine, mp4)
			s := tu.MustServer(t, engine, shared, processing)
			waitReady(t, s, token, id)
		})
	}
}

// uploadThenStop uploads clip to an instance that does not process videos
// and stops it. shared makes later instances use its database and data dir.
func uploadThenStop(t *testing.T, engine string, clip []byte) (shared func(*server.Config), dataDir, token, videoID string) {
	t.Helper()
	dbURL, dataDir := tu.MustDatabaseURL(t, engine), t.TempDir()
	shared = func(c *server.Config) { c.DatabaseURL, c.DataDir = dbURL, dataDir }
	t.Run("upload to an instance that does not process, then stop it", func(t *testing.T) {
		s := tu.MustServer(t, engine, shared)
		alice := s.MustAccount(t, "alice")
		token, videoID = alice.AccessToken, upload(t, s, alice.AccessToken, clip).GetId()
	})
	return shared, dataDir, token, videoID
}

// Two instances on one Postgres take jobs from one queue, and each video
// is processed once: every job completed on its first attempt (a second
// run of a job would be a second attempt).
func TestVideoJobs_RunOnceAcrossInstances(t *testing.T) {
	t.Parallel()
	if !strings.Contains(strings.Join(tu.Engines(t), " "), store.Postgres) {
		t.Skip("needs Postgres")
	}
	mp4 := mp4Fixture(t, "160x120", 10, 1)
	dbURL, data := tu.MustDatabaseURL(t, store.Postgres), t.TempDir()
	shared := func(c *server.Config) { c.DatabaseURL, c.DataDir, c.Video.Workers = dbURL, data, 2 }
	a, b := tu.MustServer(t, store.Postgres, shared), tu.MustServer(t, store.Postgres, shared)
	alice := a.MustAccount(t, "alice")
	var ids []string
	for i := range 6 {
		s := []*tu.Server{a, b}[i%2]
		ids = append(ids, upload(t, s, alice.AccessToken, mp4).GetId())
	}
	for _, id := range ids {
		waitReady(t, b, alice.AccessToken, id)
	}
	type job struct {
		State       string   `bun:"state"`
		Attempt     int      `bun:"attempt"`
		AttemptedBy []string `bun:"attempted_by,array"`
	}
	var jobs []job
	// River records a completion shortly after the work returns.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		jobs = nil
		if err := a.App.DB().NewSelect().Table("river_job").Column("state", "attempt", "attempted_by").
			Where("kind = ?", "video.process").Scan(t.Context(), &jobs); err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(jobs, func(j job) bool { return j.State == "running" }) || time.Now().After(deadline) {
			break
		}
	}
	if len(jobs) != len(ids) {
		t.Fatalf("%d process jobs for %d videos", len(jobs), len(ids))
	}
	workers := map[string]int{}
	for _, j := range jobs {
		if j.State != "completed" || j.Attempt != 1 || len(j.AttemptedBy) != 1 {
			t.Errorf("job %+v: want completed on its one attempt", j)
		}
		if len(j.AttemptedBy) > 0 {
			workers[j.AttemptedBy[0]]++
		}
	}
	t.Logf("jobs per instance: %v", workers)
}

// Media storage on an S3-protocol server (tu.S3: gofakes3, in process, speaking
// the real protocol to gocloud.dev's s3blob): the upload streams to it, the
// job reads and writes it, playback reads ranges from it, and deletion
// removes the objects.
func TestVideo_OnS3Storage(t *testing.T) {
	mp4 := mp4Fixture(t, "160x120", 10, 1)
	mediaURL, objects := tu.S3(t)
	s := tu.MustServer(t, "sqlite", processing, func(c *server.Config) { c.MediaURL = mediaURL })
	alice := s.MustAccount(t, "alice")
	v := waitReady(t, s, alice.AccessToken, upload(t, s, alice.AccessToken, mp4).GetId())
	if got := strings.Join(objects(), " "); got != "videos/"+v.GetId()+"/poster.jpg videos/"+v.GetId()+"/video.mp4" {
		t.Errorf("objects = %s, want the poster and the playable file", got)
	}
	res, body := get(t, s, v.GetPlaybackUrl())
	if res.StatusCode != http.StatusOK || int64(len(body)) != v.GetSizeBytes() {
		t.Fatalf("playback from S3 = %d, %d bytes", res.StatusCode, len(body))
	}
	res, part := get(t, s, v.GetPlaybackUrl(), "Range", "bytes=10-19")
	if res.StatusCode != http.StatusPartialContent || string(part) != string(body[10:20]) {
		t.Errorf("range from S3 = %d, %q", res.StatusCode, part)
	}
	tu.MustCall[flockv1.DeleteVideoResponse](t, s, tu.Connect, flockv1connect.PostServiceDeleteVideoProcedure, alice.AccessToken, &flockv1.DeleteVideoRequest{VideoId: v.GetId()})
	if got := objects(); len(got) != 0 {
		t.Errorf("objects after delete = %v", got)
	}
}

// Shutdown cancels a job that is running past the grace period and puts it
// back in the queue (property 19); the next instance finishes it.
func TestVideoJobs_ShutdownRequeuesARunningJob_P19(t *testing.T) {
	t.Parallel()
	avi := fixture(t, "slow.avi", "1280x720", 30, 20, "-c:v", "mpeg4", "-q:v", "2", "-c:a", "mp2")
	for _, engine := range tu.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			dbURL, data := tu.MustDatabaseURL(t, engine), t.TempDir()
			shared := func(c *server.Config) { c.DatabaseURL, c.DataDir = dbURL, data }
			var token, id string
			state := func(db *store.DB) (st string, attempt int) {
				_ = db.NewSelect().Table("river_job").Column("state", "attempt").
					Where("kind = ?", "video.process").Scan(t.Context(), &st, &attempt)
				return st, attempt
			}
			t.Run("stop while the job runs", func(t *testing.T) {
				s := tu.MustServer(t, engine, shared, processing, func(c *server.Config) { c.Video.StopGrace = time.Millisecond })
				alice := s.MustAccount(t, "alice")
				token, id = alice.AccessToken, upload(t, s, alice.AccessToken, avi).GetId()
				for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
					if st, _ := state(s.App.DB()); st == "running" {
						break
					} else if time.Now().After(deadline) {
						t.Fatalf("job state %q, never running", st)
					}
				}
			})
			db, err := store.Open(t.Context(), dbURL, data)
			if err != nil {
				t.Fatal(err)
			}
			// River puts a job cancelled by its stop back as available
			// without counting the attempt (a failed attempt would be
			// retryable).
			if st, attempt := state(db); st != "available" && st != "retryable" {
				t.Errorf("after shutdown the job is %s (attempt %d), want back in the queue", st, attempt)
			}
			db.Close()
			s := tu.MustServer(t, engine, shared, processing)
			if v, _ := getVideo(t, s, tu.Connect, token, id); v.GetStatus() != flockv1.VideoStatus_VIDEO_STATUS_PROCESSING {
				t.Fatalf("after the interrupted job the video is %s, want processing", v.GetStatus())
			}
			waitReady(t, s, token, id)
		})
	}
}

// READY means playable with nothing of the upload kept. The upload is
// deleted after the outputs are stored and before the video is marked
// ready; an attempt that stopped in between (a crash) leaves the outputs
// and no upload, and the retry only marks the video ready.
func TestVideoJobs_ResumeAfterOutputsStored(t *testing.T) {
	t.Parallel()
	mp4 := mp4Fixture(t, "160x120", 10, 1)
	for _, engine := range tu.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			// Then store the outputs and delete the upload, as a stopped attempt did.
			shared, data, token, id := uploadThenStop(t, engine, mp4)
			abs, err := filepath.Abs(filepath.Join(data, "media"))
			if err != nil {
				t.Fatal(err)
			}
			bucket, err := bucket.Open(t.Context(), "file://"+abs)
			if err != nil {
				t.Fatal(err)
			}
			defer bucket.Close()
			var poster bytes.Buffer
			if err := jpeg.Encode(&poster, image.NewRGBA(image.Rect(0, 0, 160, 120)), nil); err != nil {
				t.Fatal(err)
			}
			for key, b := range map[string][]byte{video.PlaybackKey(id): mp4, video.PosterKey(id): poster.Bytes()} {
				if err := bucket.WriteAll(t.Context(), key, b, nil); err != nil {
					t.Fatal(err)
				}
			}
			if err := bucket.Delete(t.Context(), video.OriginalKey(id)); err != nil {
				t.Fatal(err)
			}

			s := tu.MustServer(t, engine, shared, processing)
			v := waitReady(t, s, token, id)
			if v.GetWidth() != 160 || v.GetHeight() != 120 || v.GetDurationSeconds() <= 0 {
				t.Errorf("resumed video = %dx%d, %gs; want 160x120 and its duration", v.GetWidth(), v.GetHeight(), v.GetDurationSeconds())
			}
			if res, body := get(t, s, v.GetPlaybackUrl()); res.StatusCode != http.StatusOK || !bytes.Equal(body, mp4) {
				t.Errorf("playback = %d (%d bytes), want 200 with the stored file", res.StatusCode, len(body))
			}
		})
	}
}

// A video is READY only once its upload is gone: whoever reads READY finds
// the two outputs and nothing else.
func TestVideo_ReadyMeansUploadGone(t *testing.T) {
	t.Parallel()
	mp4 := mp4Fixture(t, "160x120", 10, 1)
	for _, engine := range tu.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			s := tu.MustServer(t, engine, processing)
			alice := s.MustAccount(t, "alice")
			for range 3 {
				v := waitReady(t, s, alice.AccessToken, upload(t, s, alice.AccessToken, mp4).GetId())
				var got []string
				for _, f := range mediaFiles(t, s) {
					if strings.HasPrefix(f, v.GetId()+"/") {
						got = append(got, strings.TrimPrefix(f, v.GetId()+"/"))
					}
				}
				slices.Sort(got)
				if !slices.Equal(got, []string{"poster.jpg", "video.mp4"}) {
					t.Fatalf("files of a READY video = %v, want [poster.jpg video.mp4]", got)
				}
			}
		})
	}
}
