package runner

import (
	"fmt"
	"strings"

	"github.com/kilnci/kiln/internal/runner/client"
)

// containerImages returns the job's image and services with variables in
// their names (and the services' own variables) expanded as GitLab Runner
// does, with the job's variables.
func (j *jobRun) containerImages() (*client.Image, []client.Image) {
	lookup := func(k string) (string, bool) { v, ok := j.vars[k]; return v, ok }
	expand := func(img client.Image) client.Image {
		img.Name = expandVars(img.Name, lookup)
		img.Alias = expandVars(img.Alias, lookup)
		vars := make([]client.Variable, 0, len(img.Variables))
		for _, v := range img.Variables {
			if !v.Raw {
				v.Value = expandVars(v.Value, lookup)
			}
			vars = append(vars, v)
		}
		img.Variables = vars
		return img
	}
	var image *client.Image
	if j.job.Image != nil && j.job.Image.Name != "" {
		img := expand(*j.job.Image)
		image = &img
	}
	var services []client.Image
	for _, s := range j.job.Services {
		if s.Name != "" {
			services = append(services, expand(s))
		}
	}
	return image, services
}

// warnIgnoredContainers says, on the first lines of the log, that the
// job's image: and services: are not honoured by this runner's executor.
func (j *jobRun) warnIgnoredContainers(executor string) {
	var what []string
	if j.job.Image != nil && j.job.Image.Name != "" {
		what = append(what, "image: "+j.job.Image.Name)
	}
	if len(j.job.Services) > 0 {
		var names []string
		for _, s := range j.job.Services {
			names = append(names, s.Name)
		}
		what = append(what, "services: "+strings.Join(names, ", "))
	}
	if len(what) == 0 {
		return
	}
	fmt.Fprintf(j.trace, "\x1b[0;33mWARNING: this job names %s, but this runner's %q executor runs the script on the runner's host, not in a container: they are ignored. Use a runner with the docker executor (kiln runner --executor docker).\x1b[0;m\n",
		strings.Join(what, " and "), executor)
}
