//go:build linux

package redirect

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// chainName is the base chain inside our table; the table is ours alone, so
// the name only needs to be readable in `nft list ruleset`.
const chainName = "prerouting"

// tableFlagOwner is NFT_TABLE_F_OWNER from linux/netfilter/nf_tables.h; x/sys
// does not define it.
const tableFlagOwner = 0x2

// Redirector owns the redirect table of one network namespace. Its methods are
// safe for concurrent use.
type Redirector struct {
	log   *slog.Logger
	table *nftables.Table
	chain *nftables.Chain

	mu    sync.Mutex
	conn  *nftables.Conn // lasting: its socket owns the table; nil once closed
	rules []Rule
	diag  *netlink.Conn // sock_diag, for Bypassing; nil once closed
}

// Open creates the redirect table, with no rules yet, in the network namespace
// and returns the Redirector that owns it. It fails with ErrOwnedByAnother
// when a live agent owns it. Without CAP_NET_ADMIN it fails with an error matching
// os.ErrPermission.
func Open(ctx context.Context, opts Options) (*Redirector, error) {
	if opts.TableName == "" {
		opts.TableName = DefaultTableName
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	log := opts.Logger.With("table", "inet "+opts.TableName)

	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open nftables table inet %s: %w", opts.TableName, err)
	}

	connOpts := []nftables.ConnOption{nftables.AsLasting()}
	diagCfg := &netlink.Config{}
	if opts.NetNSPath != "" {
		ns, err := os.Open(opts.NetNSPath)
		if err != nil {
			return nil, fmt.Errorf("open network namespace %s: %w", opts.NetNSPath, err)
		}
		// The fd is only needed while the sockets are created.
		defer ns.Close()
		connOpts = append(connOpts, nftables.WithNetNSFd(int(ns.Fd())))
		diagCfg.NetNS = int(ns.Fd())
	}
	diag, err := netlink.Dial(unix.NETLINK_INET_DIAG, diagCfg)
	if err != nil {
		return nil, fmt.Errorf("open sock_diag netlink socket: %w", permissionHint(err))
	}
	// google/nftables v0.3.0 always sends NFTA_TABLE_FLAGS as 0 from AddTable,
	// so it cannot create an owned table. We keep a handle on the lasting
	// socket it dials and send that one NEWTABLE message ourselves; all later
	// messages go through the library on the same socket, which the kernel
	// requires for an owned table (it checks the sender's port id).
	var sock *netlink.Conn
	connOpts = append(connOpts, nftables.WithSockOptions(func(c *netlink.Conn) error {
		sock = c
		return nil
	}))
	conn, err := nftables.New(connOpts...)
	if err != nil {
		diag.Close()
		return nil, fmt.Errorf("open nftables netlink socket: %w", permissionHint(err))
	}

	r := &Redirector{
		log:   log,
		conn:  conn,
		diag:  diag,
		table: &nftables.Table{Name: opts.TableName, Family: nftables.TableFamilyINet, Flags: tableFlagOwner},
	}
	r.chain = &nftables.Chain{
		Name:     chainName,
		Table:    r.table,
		Type:     nftables.ChainTypeNAT,
		Hooknum:  nftables.ChainHookPrerouting,
		Priority: nftables.ChainPriorityNATDest,
	}

	if err := r.create(ctx, sock); err != nil {
		// Closing the socket also makes the kernel drop a half-built owned
		// table.
		_ = conn.CloseLasting()
		diag.Close()
		return nil, err
	}
	log.Info("redirect table created", "owner", true)
	return r, nil
}

// create builds our table over the lasting socket.
func (r *Redirector) create(ctx context.Context, sock *netlink.Conn) error {
	if sock == nil {
		return errors.New("nftables did not dial a lasting netlink socket")
	}
	if d, ok := ctx.Deadline(); ok {
		if err := sock.SetDeadline(d); err != nil {
			return fmt.Errorf("set netlink deadline: %w", err)
		}
		defer sock.SetDeadline(time.Time{})
	}

	// Listed first: the kernel refuses a table another socket owns with
	// EPERM, which would pass for a missing NET_ADMIN. Every table of ours
	// is owned (created so below, or not at all): the kernel deletes one
	// when its socket closes, so its owner is alive.
	tables, err := r.conn.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return fmt.Errorf("list nftables tables: %w", permissionHint(err))
	}
	if slices.ContainsFunc(tables, func(t *nftables.Table) bool { return t.Name == r.table.Name }) {
		return fmt.Errorf("table inet %s: %w", r.table.Name, ErrOwnedByAnother)
	}

	if err := ctx.Err(); err != nil {
		return fmt.Errorf("create table inet %s: %w", r.table.Name, err)
	}
	if err := sendBatch(sock, newOwnedTableMsg(r.table)); err != nil {
		switch {
		case errors.Is(err, unix.EEXIST):
			// Another agent created it between our listing and now.
			return fmt.Errorf("create table inet %s: %w", r.table.Name, ErrOwnedByAnother)
		case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.EINVAL):
			return fmt.Errorf("create owned table inet %s (needs Linux >= 5.12 for NFT_TABLE_F_OWNER): %w", r.table.Name, err)
		}
		return fmt.Errorf("create table inet %s: %w", r.table.Name, permissionHint(err))
	}

	r.conn.AddChain(r.chain)
	r.conn.AddRule(&nftables.Rule{Table: r.table, Chain: r.chain, Exprs: keepConntrack()})
	if err := r.conn.Flush(); err != nil {
		return fmt.Errorf("create chain %s in table inet %s: %w", chainName, r.table.Name, permissionHint(err))
	}
	return nil
}

// Set atomically replaces the redirected ports with rules: in one nftables
// transaction the chain is flushed and refilled, so no new connection ever
// sees a mix of the old and new sets. Connections already open keep the path
// they started on. Set(nil) stops all redirection.
func (r *Redirector) Set(rules []Rule) error {
	if err := validate(rules); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conn == nil {
		return fmt.Errorf("set redirect rules in table inet %s: redirector closed", r.table.Name)
	}
	r.conn.FlushChain(r.chain)
	r.conn.AddRule(&nftables.Rule{Table: r.table, Chain: r.chain, Exprs: keepConntrack()})
	for _, rule := range rules {
		r.conn.AddRule(&nftables.Rule{Table: r.table, Chain: r.chain, Exprs: ruleExprs(rule)})
	}
	if err := r.conn.Flush(); err != nil {
		return fmt.Errorf("set redirect rules %v in table inet %s: %w", rules, r.table.Name, permissionHint(err))
	}
	r.rules = slices.Clone(rules)
	r.log.Info("redirect rules set", "rules", fmt.Sprint(rules))
	return nil
}

// Rules returns the rules last installed by Set.
func (r *Redirector) Rules() []Rule {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.rules)
}

// Close deletes the table and closes the owning socket. Even when the delete
// fails, closing the socket makes the kernel delete the table. Close is
// idempotent.
func (r *Redirector) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conn == nil {
		return nil
	}
	conn := r.conn
	r.conn = nil
	r.rules = nil
	r.diag.Close()
	r.diag = nil

	conn.DelTable(r.table)
	delErr := conn.Flush()
	if delErr != nil {
		delErr = fmt.Errorf("delete table inet %s: %w", r.table.Name, delErr)
	}
	closeErr := conn.CloseLasting()
	if closeErr != nil {
		closeErr = fmt.Errorf("close nftables socket owning table inet %s: %w", r.table.Name, closeErr)
	}
	r.log.Info("redirect table deleted")
	return errors.Join(delErr, closeErr)
}

// validate rejects rule sets the kernel would accept but that make no sense.
func validate(rules []Rule) error {
	seen := make(map[uint16]bool, len(rules))
	for _, r := range rules {
		switch {
		case r.Port == 0 || r.ToPort == 0:
			return fmt.Errorf("redirect rule %d->%d: ports must be non-zero", r.Port, r.ToPort)
		case r.Port == r.ToPort:
			return fmt.Errorf("redirect rule %d->%d: a port cannot redirect to itself", r.Port, r.ToPort)
		case seen[r.Port]:
			return fmt.Errorf("redirect rule %d->%d: port %d is redirected twice", r.Port, r.ToPort, r.Port)
		}
		seen[r.Port] = true
	}
	return nil
}

// ruleExprs is `tcp dport P tcp flags & (syn | ack) == syn redirect to :A`,
// written the way nft(8) compiles it.
//
// The SYN test matters for connections the app accepted before the pod's
// first redirect. Until a NAT rule exists in the namespace, conntrack does
// not track them; once it does, it picks each one up at its next packet
// (nf_conntrack_tcp_loose) as if new, and the NAT chain sees that packet. A
// rule without the SYN test then redirects the middle of a connection to the
// agent's port, which answers with a reset: every request in flight on a
// kept-alive connection to the app failed at the first intercept. With it,
// those connections go on reaching the app (Bypassing counts them).
func ruleExprs(r Rule) []expr.Any {
	return []expr.Any{
		// meta l4proto tcp
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		// th dport P: the destination port is bytes 2-3 of the TCP header.
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(r.Port)},
		// tcp flags & (syn | ack) == syn: the flags are byte 13.
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{0x12}, Xor: []byte{0x00}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0x02}},
		// redirect to :A
		&expr.Immediate{Register: 1, Data: binaryutil.BigEndian.PutUint16(r.ToPort)},
		&expr.Redir{RegisterProtoMin: 1},
	}
}

// keepConntrack is the chain's first rule, which matches nothing and stays
// while the table does: it reads the connection's state (ct state), and so
// holds conntrack in the pod's network namespace, as each redirect rule
// does. Without it, once Set took the last redirect rule away, the kernel
// stopped tracking connections there (conntrack runs in a namespace only
// while a rule needs it), and the connections the redirect had sent to the
// agent lost their translation: the agent's answers went out from its own
// port and their clients waited for their timeouts
// (TestRedirectedConnectionsNeedTheTable). In a NAT chain, which sees a
// connection's first packet only, reading a register and comparing nothing
// changes nothing.
func keepConntrack() []expr.Any {
	return []expr.Any{&expr.Ct{Register: 1, Key: expr.CtKeySTATE}}
}

// newOwnedTableMsg is NFT_MSG_NEWTABLE with NFT_TABLE_F_OWNER, created
// exclusively so that we never adopt a table we did not make.
func newOwnedTableMsg(t *nftables.Table) netlink.Message {
	attrs, _ := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_TABLE_NAME, Data: []byte(t.Name + "\x00")},
		{Type: unix.NFTA_TABLE_FLAGS, Data: binaryutil.BigEndian.PutUint32(t.Flags)},
	})
	return netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWTABLE),
			Flags: netlink.Request | netlink.Acknowledge | netlink.Create | netlink.Excl,
		},
		Data: append(nfgenmsg(byte(t.Family), 0), attrs...),
	}
}

// sendBatch sends one acknowledged message wrapped in an nfnetlink batch, as
// nf_tables requires for changes, and waits for its acknowledgement. Exactly
// one message keeps the reply unambiguous: one ack or one error, nothing left
// on the socket for the library to misread later.
func sendBatch(sock *netlink.Conn, m netlink.Message) error {
	begin := netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_MSG_BATCH_BEGIN), Flags: netlink.Request},
		Data:   nfgenmsg(unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES),
	}
	end := netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_MSG_BATCH_END), Flags: netlink.Request},
		Data:   nfgenmsg(unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES),
	}
	if _, err := sock.SendMessages([]netlink.Message{begin, m, end}); err != nil {
		return err
	}
	// Receive turns an NLMSG_ERROR with a non-zero errno into an error.
	_, err := sock.Receive()
	return err
}

// nfgenmsg is struct nfgenmsg: family, version, resource id (big endian).
func nfgenmsg(family byte, resID uint16) []byte {
	return append([]byte{family, unix.NFNETLINK_V0}, binaryutil.BigEndian.PutUint16(resID)...)
}

// permissionHint tells the caller what to do when the kernel refuses us for
// lack of CAP_NET_ADMIN. The result still matches os.ErrPermission.
func permissionHint(err error) error {
	if errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("%w (the agent container needs the NET_ADMIN capability to redirect ports; without it, use the no-capability mechanism)", err)
	}
	return err
}
