package plugin

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/kubectl-tele/kubectl-tele/pkg/net/helper"
	"github.com/kubectl-tele/kubectl-tele/pkg/session"
)

// newCmdHelper is the short-lived privileged helper: connect and quit run it
// through sudo. It takes its request on stdin and acts for SUDO_UID.
func newCmdHelper() *cobra.Command {
	var logFile, mode string
	cmd := &cobra.Command{
		Use:       "helper up|down|dns",
		Short:     "Create or remove the TUN device, routes and DNS settings (root, run by connect and quit; dns: by the daemon, to update them)",
		Hidden:    true,
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"up", "down", "dns"},
		RunE: func(cmd *cobra.Command, args []string) error {
			if os.Geteuid() != 0 {
				return fmt.Errorf("kubectl-tele helper must run as root (connect runs it through sudo)")
			}
			uid := 0
			if s := os.Getenv("SUDO_UID"); s != "" {
				n, err := strconv.Atoi(s)
				if err != nil {
					return fmt.Errorf("SUDO_UID %q: %w", s, err)
				}
				uid = n
			}
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			if logFile != "" {
				f, err := openLog(logFile, uid)
				if err != nil {
					return err
				}
				defer f.Close()
				log = slog.New(slog.NewTextHandler(f, nil)).With("pid", os.Getpid(), "action", args[0])
			}
			slog.SetDefault(log) // the device package logs through the default logger
			var err error
			switch args[0] {
			case "up":
				data, rerr := io.ReadAll(io.LimitReader(os.Stdin, 1<<20))
				if rerr != nil {
					return rerr
				}
				err = helper.Up(cmd.Context(), data, uid, log)
			case "dns":
				data, rerr := io.ReadAll(io.LimitReader(os.Stdin, 1<<20))
				if rerr != nil {
					return rerr
				}
				err = helper.Update(cmd.Context(), data, uid, mode, log)
			case "down":
				err = helper.Down(cmd.Context(), session.DeviceName, log)
			default:
				return usagef("helper: unknown action %q (up, down or dns)", args[0])
			}
			if err != nil {
				log.Error("helper failed", "err", err)
			}
			return err
		},
	}
	cmd.Flags().StringVar(&logFile, "log-file", "", "append the helper's log here")
	cmd.Flags().StringVar(&mode, "mode", "", "dns: the resolver mode the session's helper chose")
	return cmd
}

// openLog opens the user's helper log for appending; the helper runs as
// root but leaves the file the user's.
func openLog(path string, uid int) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY|syscallONofollow, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open helper log %s: %w", path, err)
	}
	f.Chown(uid, -1)
	return f, nil
}

// runHelper runs `kubectl-tele helper ACTION` as root: directly when we are
// root, else through sudo (which asks for a password on the terminal).
func runHelper(ctx context.Context, action string, request []byte, paths session.Paths, errOut io.Writer, extra ...string) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find this program: %w", err)
	}
	args := append([]string{exe, "helper", action, "--log-file", paths.HelperLog()}, extra...)
	if os.Geteuid() != 0 {
		sudo, err := exec.LookPath("sudo")
		if err != nil {
			return fmt.Errorf("kubectl tele needs root for a moment to create the TUN device, routes and DNS settings, and sudo is not installed: install sudo, or run as root")
		}
		pre := []string{sudo}
		if !term.IsTerminal(int(os.Stdin.Fd())) {
			pre = append(pre, "-n") // no terminal to ask a password on
		}
		args = append(pre, args...)
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	if request != nil {
		pr, pw, err := os.Pipe()
		if err != nil {
			return err
		}
		go func() { pw.Write(request); pw.Close() }()
		cmd.Stdin = pr
		defer pr.Close()
	} else {
		cmd.Stdin = os.Stdin // sudo may ask for a password
	}
	cmd.Stdout, cmd.Stderr = errOut, errOut
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("privileged helper (%s) failed: %w; its log: %s", action, err, paths.HelperLog())
	}
	return nil
}
