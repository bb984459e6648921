package plugin

import "github.com/kubectl-tele/kubectl-tele/pkg/net/helper"

func helperStateDir() (string, error) { return helper.StateDir() }
