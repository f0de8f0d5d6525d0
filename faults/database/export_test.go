package database

// OwnMarker lets the external tests run a statement as the injector's own.
const OwnMarker = ownMarker
