package web

import (
	_ "embed"
	"net/http"

	"github.com/labstack/echo/v4"
)

// openAPIDoc describes every endpoint of the API, its auth and its schemas.
//
//go:embed openapi.json
var openAPIDoc []byte

func (s *server) openAPI(c echo.Context) error {
	return c.Blob(http.StatusOK, "application/json", openAPIDoc)
}

func (s *server) apiSites(c echo.Context) error {
	vs, err := s.siteViews(c.Request().Context(), s.Sites.Status(), false)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"sites": vs})
}

func (s *server) apiSite(c echo.Context) error {
	v, err := s.siteView(c.Request().Context(), c.Param("site"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}

func (s *server) apiMachines(c echo.Context) error {
	f, err := machineFilter(c)
	if err != nil {
		return err
	}
	ms, next, err := s.machineViews(c.Request().Context(), f)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"machines": ms, "next": nextLink(c, next)})
}

func (s *server) apiMachine(c echo.Context) error {
	d, err := s.machineDetail(c.Request().Context(), c.Param("site"), c.Param("name"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, d)
}

func (s *server) apiDiscovered(c echo.Context) error {
	ds, next, err := s.discovered(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"machines": ds, "next": nextLink(c, next)})
}

// apiDiscoveredPatch answers the site.yaml patch that declares the
// discovered machines of the mac parameters in the site of site.
func (s *server) apiDiscoveredPatch(c echo.Context) error {
	p, err := s.sitePatch(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, p)
}

func (s *server) apiRollout(c echo.Context) error {
	r, err := s.rollout(c)
	if err != nil {
		return err
	}
	if r == nil {
		return kindf(ErrNotFound, "site %s never had a rollout", c.Param("site"))
	}
	return c.JSON(http.StatusOK, r)
}

// rollout returns the site's current or last rollout, nil if none.
func (s *server) rollout(c echo.Context) (*RolloutView, error) {
	site := c.Param("site")
	if _, err := s.siteStatus(site); err != nil {
		return nil, err
	}
	if s.Rebuilds == nil {
		return nil, errNoRebuilds
	}
	r, ok, err := s.Rebuilds.Rollout(c.Request().Context(), site)
	if err != nil || !ok {
		return nil, err
	}
	r.VersionRef = newVersionBook(s.DB).named(c.Request().Context(), site, r.Version)
	return &r, nil
}
