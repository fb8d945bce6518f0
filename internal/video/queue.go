package video

import (
	"context"
	"time"

	"github.com/riverqueue/river"

	"github.com/flock-social/flock/internal/jobs"
)

// queueName is the job queue of video processing.
const queueName = "video"

// processArgs is the job that processes one uploaded video.
type processArgs struct {
	VideoID string `json:"video_id"`
}

func (processArgs) Kind() string { return "video.process" }

func (processArgs) InsertOpts() river.InsertOpts {
	// ByArgs: one job per video at a time, so the rescue cannot double it.
	return river.InsertOpts{Queue: queueName, MaxAttempts: 5, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// rescueArgs is the periodic job that queues videos still processing long
// after their upload, whose job was lost (a crash between the upload's
// commit and its enqueue).
type rescueArgs struct{}

func (rescueArgs) Kind() string { return "video.rescue" }

func (rescueArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: queueName, UniqueOpts: river.UniqueOpts{ByPeriod: time.Minute}}
}

// register puts the video jobs on q: every instance can queue them; those
// with Workers > 0 process them.
func (s *Service) register(q *jobs.Queue) {
	jobs.AddWorker(q, &processWorker{s: s})
	jobs.AddWorker(q, &rescueWorker{s: s})
	jobs.AddQueue(q, queueName, s.cfg.Workers)
	if s.cfg.Workers > 0 {
		q.AddPeriodic(5*time.Minute, func() river.JobArgs { return rescueArgs{} }, true)
	}
	// Past this a running job is presumed lost with its instance and is
	// run again; the worker enforces ProcessTimeout itself, to fail the
	// video.
	q.RescueAfter(s.cfg.ProcessTimeout + 5*time.Minute)
}

func (s *Service) enqueue(ctx context.Context, videoID string) error {
	return s.queue.Insert(ctx, processArgs{VideoID: videoID})
}
