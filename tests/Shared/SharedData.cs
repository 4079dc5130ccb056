namespace Quantize.Tests;

/// <summary>
/// The test data beside the repository (<c>../shared</c>): read in place, never copied. A test that
/// needs it fails when it is missing under CI (<c>CI</c> set) and is skipped, with the reason, elsewhere.
/// </summary>
internal static class SharedData
{
    private static readonly Lazy<string?> RootDirectory = new(FindRoot);

    /// <summary>The repository's root folder (the one holding Quantize.Build.sln).</summary>
    public static string RepositoryRoot { get; } = FindRepositoryRoot();

    /// <summary>The shared folder, or null when it is not there.</summary>
    public static string? Root => RootDirectory.Value;

    /// <summary>True when running under CI, where missing data is a failure.</summary>
    public static bool IsCI => !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("CI"));

    /// <summary>The full path of <paramref name="relative"/> inside the shared folder; fails or skips the test when absent.</summary>
    public static string Require(string relative)
    {
        string? root = Root;
        string path = root is null ? relative : Path.Combine(root, relative);
        if (root is not null && (File.Exists(path) || Directory.Exists(path))) return path;
        string reason = root is null
            ? $"The shared test data folder was not found (looked for ../shared beside {RepositoryRoot}; set QUANTIZE_SHARED_DIR to override)."
            : $"Shared test data '{relative}' is missing from {root}.";
        if (IsCI) Assert.Fail(reason);
        Assert.Skip(reason);
        return path; // unreachable
    }

    /// <summary>True when <paramref name="relative"/> exists in the shared folder (for building theory data).</summary>
    public static bool Exists(string relative) =>
        Root is { } root && (File.Exists(Path.Combine(root, relative)) || Directory.Exists(Path.Combine(root, relative)));

    private static string? FindRoot()
    {
        string? overridden = Environment.GetEnvironmentVariable("QUANTIZE_SHARED_DIR");
        if (!string.IsNullOrEmpty(overridden)) return Directory.Exists(overridden) ? Path.GetFullPath(overridden) : null;
        string candidate = Path.GetFullPath(Path.Combine(RepositoryRoot, "..", "shared"));
        return Directory.Exists(candidate) ? candidate : null;
    }

    private static string FindRepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Quantize.Build.sln"))) return dir.FullName;
        }
        throw new InvalidOperationException($"Quantize.Build.sln not found above {AppContext.BaseDirectory}.");
    }
}
