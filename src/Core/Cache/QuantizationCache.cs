namespace Quantize.Core.Cache;

/// <summary>
/// A folder of finished quantizations addressed by <see cref="QuantizationCacheKey"/>, shared by projects and builds.
/// An entry is the quantized model and its report (JSON). Both are written under unique temporary names and renamed
/// into place, the model last: an entry exists once its model file does, and a concurrent or killed writer never
/// leaves half a file under an entry's name.
/// </summary>
public sealed class QuantizationCache
{
    /// <summary>Opens (without creating) the cache in <paramref name="directory"/>.</summary>
    public QuantizationCache(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        Directory = Path.GetFullPath(directory);
    }

    /// <summary>The cache folder.</summary>
    public string Directory { get; }

    /// <summary>The user-level default: <c>Quantize.Build/cache</c> under the local application data folder (or ~/.cache when there is none).</summary>
    public static string DefaultDirectory
    {
        get
        {
            string root = Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData);
            if (string.IsNullOrEmpty(root)) root = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
            return Path.Combine(root, "Quantize.Build", "cache");
        }
    }

    /// <summary>Where the entry's model lives (it may not exist).</summary>
    public string ModelPath(string key) => Path.Combine(Folder(key), key + ".model");

    /// <summary>Where the entry's report lives (it may not exist).</summary>
    public string ReportPath(string key) => Path.Combine(Folder(key), key + ".report.json");

    /// <summary>
    /// Copies the entry for <paramref name="key"/> to <paramref name="modelDestination"/> (and its report to
    /// <paramref name="reportDestination"/> when given), each through a temporary file and a rename.
    /// </summary>
    /// <returns>False when there is no entry.</returns>
    public bool TryGet(string key, string modelDestination, string? reportDestination = null)
    {
        ArgumentNullException.ThrowIfNull(modelDestination);
        string model = ModelPath(key);
        if (!File.Exists(model)) return false;
        try
        {
            if (reportDestination is not null)
            {
                string report = ReportPath(key);
                if (File.Exists(report)) CopyAtomically(report, reportDestination);
            }
            CopyAtomically(model, modelDestination);
            return true;
        }
        catch (FileNotFoundException)
        {
            // Someone cleared the cache between the check and the copy: a miss.
            return false;
        }
    }

    /// <summary>
    /// Stores <paramref name="modelPath"/> (and <paramref name="reportPath"/> when given) as the entry for
    /// <paramref name="key"/>. Safe to call from many threads and processes with the same key at once: the contents
    /// are equal, and the last rename wins.
    /// </summary>
    public void Put(string key, string modelPath, string? reportPath = null)
    {
        ArgumentNullException.ThrowIfNull(modelPath);
        System.IO.Directory.CreateDirectory(Folder(key));
        if (reportPath is not null) CopyAtomically(reportPath, ReportPath(key));
        CopyAtomically(modelPath, ModelPath(key));
    }

    private string Folder(string key)
    {
        if (key.Length < 16 || !key.All(char.IsAsciiHexDigitLower))
            throw new ArgumentException($"'{key}' is not a cache key (lowercase hex SHA-256).", nameof(key));
        return Path.Combine(Directory, key[..2]);
    }

    /// <summary>Copies to a unique temporary name beside the destination, then renames over it.</summary>
    internal static void CopyAtomically(string source, string destination)
    {
        string full = Path.GetFullPath(destination);
        string folder = Path.GetDirectoryName(full)!;
        System.IO.Directory.CreateDirectory(folder);
        string temporary = Path.Combine(folder, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
        try
        {
            File.Copy(source, temporary);
            try
            {
                File.Move(temporary, full, overwrite: true);
            }
            catch (IOException) when (File.Exists(full) && new FileInfo(full).Length == new FileInfo(temporary).Length)
            {
                // Windows refuses to replace a file another process has open; that file is an equal copy.
            }
            catch (UnauthorizedAccessException) when (File.Exists(full) && new FileInfo(full).Length == new FileInfo(temporary).Length)
            {
            }
        }
        finally
        {
            if (File.Exists(temporary)) File.Delete(temporary);
        }
    }
}
