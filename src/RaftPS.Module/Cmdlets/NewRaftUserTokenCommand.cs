using System.Management.Automation;
using System.Security;
using RaftPS.Client;

namespace RaftPS.Cmdlets;

/// <summary>
/// New-RaftUserToken: a random 256-bit token for a user with a role, and its line in a node's
/// --auth-file (NAME ROLE SHA256). Only the hash is written; the token is output once, as a
/// SecureString (or as text with -AsPlainText, to store in a secret store).
/// </summary>
[Cmdlet(VerbsCommon.New, "RaftUserToken", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(RaftUserToken))]
public sealed class NewRaftUserTokenCommand : PSCmdlet
{
    [Parameter(Mandatory = true, Position = 0)]
    [ValidatePattern("^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")]
    public string Name { get; set; } = "";

    [Parameter(Mandatory = true, Position = 1)]
    [ValidateSet("read", "write", "admin")]
    public string Role { get; set; } = "";

    /// <summary>The auth file to add the user's line to (made when missing).</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? AuthFile { get; set; }

    /// <summary>Replace the line of a user the file lists already (its old token stops working once the nodes restart).</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    /// <summary>Output the token as text (PlainTextToken) instead of a SecureString.</summary>
    [Parameter]
    public SwitchParameter AsPlainText { get; set; }

    protected override void EndProcessing()
    {
        var role = Role.ToLowerInvariant();
        string? path = AuthFile is null ? null : SessionState.Path.GetUnresolvedProviderPathFromPSPath(AuthFile);
        if (path is not null && !ShouldProcess(path, $"Add the user '{Name}' ({role})")) return;
        var token = UserTokens.NewToken();
        try
        {
            var hash = UserTokens.Hash(token);
            if (path is not null)
            {
                try
                {
                    UserTokens.WriteLine(path, Name, role, hash, Force);
                }
                catch (InvalidOperationException e)
                {
                    ThrowTerminatingError(new ErrorRecord(e, "RaftUserExists", ErrorCategory.ResourceExists, Name));
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    ThrowTerminatingError(new ErrorRecord(e, "RaftAuthFileFailed", ErrorCategory.WriteError, path));
                }
            }
            WriteObject(new RaftUserToken
            {
                Name = Name,
                Role = role,
                Token = AsPlainText ? null : ToSecureString(token),
                PlainTextToken = AsPlainText ? new string(token) : null,
                Hash = hash,
                AuthFile = path,
            });
        }
        finally
        {
            Array.Clear(token);
        }
    }

    internal static SecureString ToSecureString(char[] text)
    {
        var secure = new SecureString();
        foreach (var c in text) secure.AppendChar(c);
        secure.MakeReadOnly();
        return secure;
    }
}
