package server

import (
	"context"

	"connectrpc.com/connect"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
	"github.com/flock-social/flock/internal/moderation"
	"github.com/flock-social/flock/internal/store"
)

// moderationServer serves flock.v1.ModerationService. The domain refuses
// everyone but staff; the auth interceptor has already refused anonymous
// callers.
type moderationServer struct {
	moderation *moderation.Service
	conv       converter
}

var _ flockv1connect.ModerationServiceHandler = (*moderationServer)(nil)

// Report enums, stored value by API value. Unspecified maps to "", which
// the domain refuses or (for the status filter) reads as "any".
var (
	storedReportReasons = map[flockv1.ReportReason]string{
		flockv1.ReportReason_REPORT_REASON_UNSPECIFIED:    "",
		flockv1.ReportReason_REPORT_REASON_SPAM:           store.ReasonSpam,
		flockv1.ReportReason_REPORT_REASON_HARASSMENT:     store.ReasonHarassment,
		flockv1.ReportReason_REPORT_REASON_HATE:           store.ReasonHate,
		flockv1.ReportReason_REPORT_REASON_VIOLENCE:       store.ReasonViolence,
		flockv1.ReportReason_REPORT_REASON_NUDITY:         store.ReasonNudity,
		flockv1.ReportReason_REPORT_REASON_MISINFORMATION: store.ReasonMisinformation,
		flockv1.ReportReason_REPORT_REASON_OTHER:          store.ReasonOther,
	}
	storedReportStatuses = map[flockv1.ReportStatus]string{
		flockv1.ReportStatus_REPORT_STATUS_UNSPECIFIED: "",
		flockv1.ReportStatus_REPORT_STATUS_OPEN:        store.ReportOpen,
		flockv1.ReportStatus_REPORT_STATUS_RESOLVED:    store.ReportResolved,
	}
	storedReportActions = map[flockv1.ReportAction]string{
		flockv1.ReportAction_REPORT_ACTION_UNSPECIFIED:    "",
		flockv1.ReportAction_REPORT_ACTION_DISMISS:        store.ActionDismiss,
		flockv1.ReportAction_REPORT_ACTION_REMOVE_POST:    store.ActionRemovePost,
		flockv1.ReportAction_REPORT_ACTION_SUSPEND_AUTHOR: store.ActionSuspendAuthor,
	}
)

// invert turns a stored-by-API map into API-by-stored, for the converter.
func invert[K comparable, V comparable](m map[K]V) map[V]K {
	out := make(map[V]K, len(m))
	for k, v := range m {
		out[v] = k
	}
	return out
}

var (
	reportReasons  = invert(storedReportReasons)
	reportStatuses = invert(storedReportStatuses)
	reportActions  = invert(storedReportActions)
)

func (s *moderationServer) ListReports(ctx context.Context, req *connect.Request[flockv1.ListReportsRequest]) (*connect.Response[flockv1.ListReportsResponse], error) {
	p := principal(ctx)
	pg, err := s.moderation.ListReports(ctx, p, storedReportStatuses[req.Msg.GetStatus()], req.Msg.GetPageSize(), req.Msg.GetPageToken())
	if err != nil {
		return nil, err
	}
	out := make([]*flockv1.Report, len(pg.Reports))
	for i, r := range pg.Reports {
		out[i] = s.conv.report(r, p.UserID)
	}
	return connect.NewResponse(&flockv1.ListReportsResponse{Reports: out, NextPageToken: pg.NextPageToken}), nil
}

func (s *moderationServer) ResolveReport(ctx context.Context, req *connect.Request[flockv1.ResolveReportRequest]) (*connect.Response[flockv1.ResolveReportResponse], error) {
	p := principal(ctx)
	r, err := s.moderation.ResolveReport(ctx, p, req.Msg.GetReportId(), storedReportActions[req.Msg.GetAction()])
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&flockv1.ResolveReportResponse{Report: s.conv.report(r, p.UserID)}), nil
}
