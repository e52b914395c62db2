//go:build cuda

package cuda

import (
	"fmt"
	"unsafe"
)

// need checks that each buffer is of kind k and holds at least n elements,
// naming the op, the argument and the shapes.
type need struct {
	op  string
	err error
}

func (c *need) buf(name string, b *Buffer, k Kind, n int) *need {
	if c.err != nil {
		return c
	}
	switch {
	case b == nil:
		c.err = fmt.Errorf("cuda: %s: %s is nil (need %s[%d])", c.op, name, k, n)
	case b.gone():
		c.err = fmt.Errorf("cuda: %s: %s was freed", c.op, name)
	case n < 0:
		c.err = fmt.Errorf("cuda: %s: %s needs %d elements", c.op, name, n)
	case b.Kind != k:
		c.err = fmt.Errorf("cuda: %s: %s is %s, need %s[%d]", c.op, name, b, k, n)
	case b.Len < n:
		c.err = fmt.Errorf("cuda: %s: %s is %s, need %s[%d]", c.op, name, b, k, n)
	}
	return c
}

// apart fails when the first n1 elements of b1 and the first n2 of b2
// share bytes (either may be nil): a kernel writing one while its other
// threads read or write the other would race.
func (c *need) apart(name1 string, b1 *Buffer, n1 int, name2 string, b2 *Buffer, n2 int) *need {
	if c.err != nil || b1 == nil || b2 == nil || n1 <= 0 || n2 <= 0 {
		return c
	}
	s1, s2 := uintptr(b1.ptr), uintptr(b2.ptr)
	if s1 < s2+uintptr(n2*b2.Kind.Size()) && s2 < s1+uintptr(n1*b1.Kind.Size()) {
		c.err = fmt.Errorf("cuda: %s: %s and %s overlap", c.op, name1, name2)
	}
	return c
}

// span is an argument's first n elements, for the overlap checks.
type span struct {
	name string
	b    *Buffer
	n    int
}

// written checks each of the buffers an op writes apart from the others it
// writes and from those it reads (nil or empty ones pass).
func (c *need) written(outs []span, ins ...span) *need {
	for i, o := range outs {
		for _, x := range append(outs[i+1:len(outs):len(outs)], ins...) {
			c = c.apart(o.name, o.b, o.n, x.name, x.b, x.n)
		}
	}
	return c
}

// opt is buf for an optional argument (nil allowed).
func (c *need) opt(name string, b *Buffer, k Kind, n int) *need {
	if b == nil {
		return c
	}
	return c.buf(name, b, k, n)
}

func (c *need) true(ok bool, format string, args ...any) *need {
	if c.err == nil && !ok {
		c.err = fmt.Errorf("cuda: %s: %s", c.op, fmt.Sprintf(format, args...))
	}
	return c
}

func check(op string) *need { return &need{op: op} }

// addr is a buffer's device address, or nil for a nil buffer.
func addr(b *Buffer) unsafe.Pointer {
	if b == nil {
		return nil
	}
	return b.ptr
}
