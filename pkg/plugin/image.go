package plugin

import (
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/kubectl-tele/kubectl-tele/pkg/version"
)

// imageChoice holds every place the manager's and agents' image can be
// named. Flag fields are set only when the flag was given.
type imageChoice struct {
	FlagRegistry, FlagImage string
	FileRegistry, FileImage string
	File                    string // the config file's path, for messages
}

// Where an image came from, besides a config file's path.
const (
	sourceDefault = "default"
	sourceFlagReg = "--registry"
	sourceFlagImg = "--manager-image"
)

// resolve decides the image and says where it came from. A flag beats the
// config file. --manager-image is a full reference and --registry gives
// REGISTRY/kubectl-tele:VERSION: they are two ways to say one thing, so one
// source giving both is an error. With none, it is this build's own image.
func (c imageChoice) resolve() (image, source string, err error) {
	switch {
	case c.FlagRegistry != "" && c.FlagImage != "":
		reg, _ := version.ImageIn(c.FlagRegistry)
		if reg == "" {
			reg = c.FlagRegistry + "/" + version.ImageName + ":" + version.Version
		}
		return "", "", usagef("--registry and --manager-image both name the image: drop --manager-image to use %s, or drop --registry to use %s", reg, c.FlagImage)
	case c.FlagImage != "":
		if err := checkImage(c.FlagImage); err != nil {
			return "", "", usagef("--manager-image %w", err)
		}
		return c.FlagImage, sourceFlagImg, nil
	case c.FlagRegistry != "":
		img, err := version.ImageIn(c.FlagRegistry)
		if err != nil {
			return "", "", usagef("--registry: %w", err)
		}
		return img, sourceFlagReg, nil
	case c.FileRegistry != "" && c.FileImage != "":
		return "", "", fmt.Errorf("config file %s: both registry and managerImage are set: remove one", c.File)
	case c.FileImage != "":
		if err := checkImage(c.FileImage); err != nil {
			return "", "", fmt.Errorf("config file %s: field managerImage %w", c.File, err)
		}
		return c.FileImage, c.File, nil
	case c.FileRegistry != "":
		img, err := version.ImageIn(c.FileRegistry)
		if err != nil {
			return "", "", fmt.Errorf("config file %s: field registry: %w", c.File, err)
		}
		return img, c.File, nil
	}
	return version.Image(), sourceDefault, nil
}

// checkImage says what is wrong with an image reference; the error starts
// with the reference, to follow the flag's or field's name.
func checkImage(ref string) error {
	if _, err := name.ParseReference(ref); err != nil {
		return fmt.Errorf("%q: %w: give a full image reference (like ghcr.io/my-org/kubectl-tele:v1.2.3)", ref, err)
	}
	return nil
}
