package objstore

import (
	"errors"
	"fmt"
	"testing"

	"github.com/aws/smithy-go"
)

func TestAccessProblem(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("put x: %w", &smithy.GenericAPIError{Code: "AccessDenied"}), "access denied"},
		{&smithy.GenericAPIError{Code: "SignatureDoesNotMatch"}, "access denied"},
		{&smithy.GenericAPIError{Code: "InvalidAccessKeyId"}, "access denied"},
		{&smithy.GenericAPIError{Code: "NoSuchBucket"}, "no such bucket"},
		{&smithy.GenericAPIError{Code: "SlowDown"}, ""},
		{errors.New("connection reset"), ""},
	} {
		if got := AccessProblem(c.err); got != c.want {
			t.Errorf("AccessProblem(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}
