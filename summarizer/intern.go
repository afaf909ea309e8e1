package summarizer

import (
	"unique"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// internMax is the longest string intern canonicalizes: the fold's repeated strings are short
// (archive ids, table and rule names, dates, batch ids, statuses), its unique ones long (object
// keys, URIs, digests), for which a canonical copy would only add a map entry.
const internMax = 32

// intern replaces every string field of m (and of the messages it holds) of at most internMax
// bytes by its canonical copy (unique.Make): an event kept by the fold then shares the strings
// every other event repeats (an archive id is in each of its ~20 events, a table name in every
// archive) instead of holding a copy of its own.
func intern(m protoreflect.Message) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList():
			l := v.List()
			for i := range l.Len() {
				switch fd.Kind() {
				case protoreflect.StringKind:
					if s := l.Get(i).String(); len(s) <= internMax {
						l.Set(i, protoreflect.ValueOfString(unique.Make(s).Value()))
					}
				case protoreflect.MessageKind:
					intern(l.Get(i).Message())
				}
			}
		case fd.IsMap():
		case fd.Kind() == protoreflect.StringKind:
			if s := v.String(); len(s) <= internMax {
				m.Set(fd, protoreflect.ValueOfString(unique.Make(s).Value()))
			}
		case fd.Kind() == protoreflect.MessageKind:
			intern(v.Message())
		}
		return true
	})
}
