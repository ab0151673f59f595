package pg

// BaseBackupCommand is baseBackupCommand.
var BaseBackupCommand = baseBackupCommand
