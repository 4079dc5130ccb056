namespace Quantize.Kernels.Models;

/// <summary>
/// Resolves a relative path that a model names (external data) so that it cannot reach
/// outside the model's folder: not by an absolute path, not by <c>..</c>, not through a link.
/// </summary>
internal static class ContainedPath
{
    private const int MaxLinkDepth = 40;

    private static StringComparison PathComparison =>
        OperatingSystem.IsWindows() || OperatingSystem.IsMacOS() ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal;

    public static string Resolve(string baseDirectory, string relative, string modelSource, string what)
    {
        string Refuse(string why) => throw new InvalidModelException(modelSource,
            $"{what} points to external data '{relative}', {why}. External data must be a file inside the model's folder; move it there and re-export the model.");

        if (relative.IndexOf('\0') >= 0) Refuse("which contains a NUL character");
        string normalized = relative.Replace('\\', '/');
        if (normalized.StartsWith('/') || Path.IsPathRooted(relative) || (normalized.Length >= 2 && normalized[1] == ':'))
            Refuse("which is an absolute path");
        foreach (string segment in normalized.Split('/'))
        {
            if (segment == "..") Refuse("which leaves the model's folder");
        }

        string root = RealPath(Path.GetFullPath(baseDirectory));
        string full = Path.GetFullPath(Path.Combine(root, normalized));
        if (!IsInside(root, full)) Refuse("which leaves the model's folder");

        string real;
        try
        {
            real = RealPath(full);
        }
        catch (IOException)
        {
            Refuse("which is a link that cannot be followed");
            throw; // unreachable
        }
        if (!IsInside(root, real)) Refuse("which is a link to a file outside the model's folder");
        return real;
    }

    private static bool IsInside(string root, string path)
    {
        string prefix = root.EndsWith(Path.DirectorySeparatorChar) ? root : root + Path.DirectorySeparatorChar;
        return path.StartsWith(prefix, PathComparison);
    }

    /// <summary>The path with every symbolic link along it replaced by its target.</summary>
    internal static string RealPath(string fullPath, int depth = 0)
    {
        if (depth > MaxLinkDepth) throw new IOException($"Too many levels of links at '{fullPath}'.");
        string? root = Path.GetPathRoot(fullPath);
        if (string.IsNullOrEmpty(root)) return fullPath;
        string current = root;
        string[] parts = fullPath[root.Length..].Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries);
        for (int i = 0; i < parts.Length; i++)
        {
            string next = Path.Combine(current, parts[i]);
            // LinkTarget reads the link itself (lstat), so a dangling link is caught too.
            if (new FileInfo(next).LinkTarget is { } target)
            {
                string resolved = Path.GetFullPath(Path.Combine(current, target));
                next = RealPath(resolved, depth + 1);
            }
            current = next;
        }
        return current;
    }
}
