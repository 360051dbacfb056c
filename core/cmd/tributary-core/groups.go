package main

import "github.com/tributary-io/tributary/core/server"

// newGroups builds the consumer-group coordinator; nil (group APIs not
// advertised) until core/groups is wired in.
var newGroups server.NewGroupCoordinator
