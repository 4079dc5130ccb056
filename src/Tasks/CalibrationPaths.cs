namespace Quantize.Build.Tasks;

/// <summary>
/// The <c>Calibration</c> metadata resolved: a folder of samples, or a glob (<c>*</c>, <c>?</c>, <c>**</c>) whose matching
/// folders are the samples; and the files under them, which are the build's inputs (a changed file re-quantizes).
/// </summary>
/// <param name="Folder">The data folder, when the value names one.</param>
/// <param name="Samples">The sample folders a glob matched, in ordinal order.</param>
/// <param name="Files">Every file under the folder or the samples, in ordinal order.</param>
public sealed record CalibrationPaths(string? Folder, IReadOnlyList<string> Samples, IReadOnlyList<string> Files)
{
    /// <summary>Resolves <paramref name="value"/> relative to <paramref name="projectDirectory"/>; null for an empty value.</summary>
    public static CalibrationPaths? Resolve(string? value, string projectDirectory)
    {
        if (string.IsNullOrWhiteSpace(value)) return null;
        string pattern = value.Trim().Replace('\\', '/');
        if (pattern.IndexOfAny(['*', '?']) < 0)
        {
            string folder = Path.GetFullPath(Path.Combine(projectDirectory, pattern));
            return new CalibrationPaths(folder, [], FilesUnder([folder]));
        }
        var samples = Glob(projectDirectory, pattern);
        return new CalibrationPaths(null, samples, FilesUnder(samples));
    }

    /// <summary>The folders matching <paramref name="pattern"/> (relative to <paramref name="baseDirectory"/>), in ordinal order.</summary>
    public static IReadOnlyList<string> Glob(string baseDirectory, string pattern)
    {
        var parts = pattern.Split('/', StringSplitOptions.RemoveEmptyEntries);
        string root = Path.IsPathRooted(pattern) ? Path.GetPathRoot(pattern)! : baseDirectory;
        var current = new List<string> { Path.GetFullPath(root) };
        foreach (string part in parts)
        {
            if (part == "**")
            {
                current = current.Where(Directory.Exists)
                    .SelectMany(d => new[] { d }.Concat(Directory.EnumerateDirectories(d, "*", SearchOption.AllDirectories))).Distinct().ToList();
            }
            else if (part.IndexOfAny(['*', '?']) >= 0)
            {
                current = current.Where(Directory.Exists).SelectMany(d => Directory.EnumerateDirectories(d, part)).ToList();
            }
            else
            {
                current = current.Select(d => Path.Combine(d, part)).Where(Directory.Exists).ToList();
            }
        }
        return current.Where(d => !Path.GetFileName(d).StartsWith('.')).Select(Path.GetFullPath).Distinct().Order(StringComparer.Ordinal).ToList();
    }

    private static List<string> FilesUnder(IEnumerable<string> folders) =>
        folders.Where(Directory.Exists).SelectMany(f => Directory.EnumerateFiles(f, "*", SearchOption.AllDirectories)).Order(StringComparer.Ordinal).ToList();
}
